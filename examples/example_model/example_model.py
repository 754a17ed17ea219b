"""A complete example restoration model for cirbench: a small residual conv net, blind or oracle.

Copy this file to start your own. `cirbench evaluate OUT/LIVE1 --model example_model:create` runs it from this folder
(PYTHONPATH=.); `pip install -e examples/example_model` registers it as `example-residual` through an entry point.
"""

from __future__ import annotations

import torch

from cirbench.models import ModelInfo
from cirbench.models.checkpoints import load_state_dict, load_strict


class ResidualNet(torch.nn.Module):
    """x + f(x): three 3x3 convs; with ``per_family_bias`` an oracle bias per codec family is added."""

    FAMILIES = ("JPEG", "WEBP", "HEVC", "VVC", "AVC", "C_PSNR", "C_SSIM", "HIFIC")

    def __init__(self, width: int = 16, per_family_bias: bool = False) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(width, 3, 3, padding=1),
        )  # fmt: skip
        self.family_bias = torch.nn.Parameter(torch.zeros(len(self.FAMILIES), 3)) if per_family_bias else None

    def forward(self, x: torch.Tensor, family: int | None = None) -> torch.Tensor:
        out = x + 0.1 * self.body(x)
        if self.family_bias is not None and family is not None:
            out = out + self.family_bias[family].view(1, 3, 1, 1)
        return out


class ExampleModel:
    """The RestorationModel protocol: ``info``, ``restore(lq, task)`` and ``to(device)``."""

    def __init__(self, network: ResidualNet, version: str, oracle: bool) -> None:
        self.network = network.eval()
        self.info = ModelInfo(
            name="example-residual",
            version=version,  # e.g. the checkpoint's sha256 prefix; it enters the run's identity
            needs_task_label=oracle,  # True: restore() receives the Task (an oracle method; the leaderboard says so)
            size_multiple=4,  # evaluate reflect-pads inputs to a multiple of 4 and crops the output back
            tile_size=None,  # or e.g. 256: evaluate restores overlapping tiles and blends them
            trainable=True,  # `cirbench train example_model:create` can train it
            description="residual 3-layer conv net (cirbench example model)",
            label="example (random weights unless a checkpoint is given)",
            # why these scores are not a result ("" once trained weights are loaded): never ranked as one
            not_a_result="untrained example weights" if version.startswith("random") else "",
        )

    def restore(self, lq: torch.Tensor, task) -> torch.Tensor:
        """lq: float32 [B,3,H,W] in [0,1] on the model's device; task: a cirbench Task (oracle) or None (blind).

        Returns the same shape, in [0,1] (evaluate clamps and rounds to 8 bits before scoring).
        """
        family = None
        if task is not None and task.family in ResidualNet.FAMILIES:
            family = ResidualNet.FAMILIES.index(task.family)
        return self.network(lq, family).clamp(0.0, 1.0)

    def to(self, device: str) -> ExampleModel:
        self.network.to(device)
        return self


def create(checkpoint: str | None = None, device: str = "cpu", width: int = 16, oracle: bool = False,
           seed: int = 0) -> ExampleModel:  # fmt: skip
    """The factory cirbench calls: (checkpoint=None, device='cpu', **options); options come from -O key=value."""
    torch.manual_seed(seed)
    network = ResidualNet(width, per_family_bias=oracle)
    version = f"random-seed{seed}"
    if checkpoint is not None:
        state = load_state_dict(checkpoint)  # safetensors or tensors-only torch files; never runs pickled code
        load_strict(network, state)  # names every missing, unexpected or mis-shaped key
        version = "checkpoint"
    return ExampleModel(network, version, oracle).to(device)
