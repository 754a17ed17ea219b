"""Toy restoration models for cirbench's tests: pointwise, oracle (records task ids) and a tiny conv net.

Registered through the `cirbench.models` entry-point group declared in this package's pyproject.toml.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import torch

from cirbench.models import ModelInfo
from cirbench.models.checkpoints import load_state_dict, load_strict


class PointwiseModel:
    """Pointwise: out = scale * sqrt(lq) + offset (correctly rounded ops: the same bits at any tensor shape).

    Optionally logs each call; kills its own process (SIGKILL) on call number N + 1 when the environment
    variable CIRBENCH_TOY_KILL_AFTER=N is set (an environment variable, so the run's identity is unchanged).
    """

    def __init__(self, scale: float, offset: float, log: str | None, multiple: int, tile_size: int | None) -> None:
        self.scale, self.offset = scale, offset
        self.log = Path(log) if log else None
        kill_after = os.environ.get("CIRBENCH_TOY_KILL_AFTER")
        self.kill_after = int(kill_after) if kill_after else None
        self.calls = 0
        self.info = ModelInfo(
            name="toy-pointwise", version="1", needs_task_label=False, size_multiple=multiple, tile_size=tile_size
        )

    def restore(self, lq: torch.Tensor, task) -> torch.Tensor:
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.log is not None:
            with open(self.log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"shape": list(lq.shape)}) + "\n")
        return torch.sqrt(lq.clamp(0.0, 1.0)) * self.scale + self.offset

    def to(self, device: str) -> PointwiseModel:
        return self


def create_pointwise(
    checkpoint=None, device="cpu", scale=0.9, offset=0.05, log=None, multiple=1, tile_size=None
) -> PointwiseModel:
    return PointwiseModel(float(scale), float(offset), log, int(multiple), None if tile_size is None else int(tile_size))


class OracleModel:
    """Oracle: told the task; appends the task id it receives for each image to a JSON-lines log."""

    def __init__(self, log: str) -> None:
        self.log = Path(log)
        self.info = ModelInfo(name="toy-oracle", version="1", needs_task_label=True)

    def restore(self, lq: torch.Tensor, task) -> torch.Tensor:
        with open(self.log, "a", encoding="utf-8") as handle:
            for _ in range(lq.shape[0]):
                handle.write(json.dumps({"id": task.id, "name": task.name}) + "\n")
        return lq

    def to(self, device: str) -> OracleModel:
        return self


def create_oracle(checkpoint=None, device="cpu", log="oracle.jsonl") -> OracleModel:
    return OracleModel(log)


class TinyConvNet(torch.nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(width, 3, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ConvModel:
    """A residual 2-layer conv net; trainable; loads tensors-only checkpoints strictly."""

    def __init__(self, network: TinyConvNet, version: str) -> None:
        self.network = network.eval()
        self.info = ModelInfo(name="toy-conv", version=version, needs_task_label=False, size_multiple=4, trainable=True)

    def restore(self, lq: torch.Tensor, task) -> torch.Tensor:
        return self.network(lq).clamp(0.0, 1.0)

    def to(self, device: str) -> ConvModel:
        self.network.to(device)
        return self


def create_conv(checkpoint=None, device="cpu", width=8, seed=0) -> ConvModel:
    torch.manual_seed(int(seed))
    network = TinyConvNet(int(width))
    if checkpoint is not None:
        load_strict(network, load_state_dict(checkpoint))
    return ConvModel(network, "ckpt" if checkpoint else f"seed{seed}").to(device)
