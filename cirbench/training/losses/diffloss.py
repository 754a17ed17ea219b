"""`diffloss` (Tan & Zhao, ACCV 2024): fidelity MSE plus a frozen diffusion prior's naturalness and h-space terms.

Unlike the released code (both prior passes under no_grad, so the DiffLoss terms never trained anything), the
restored branch here runs WITH autograd through the frozen prior; the ground-truth branch is a no-grad target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cirbench.diffusion.adm import ADMConfig, ADMUNet
from cirbench.diffusion.samplers import keyed_generator
from cirbench.diffusion.schedules import NoiseSchedule, adm_linear_betas
from cirbench.errors import ConfigError
from cirbench.training.losses import register_loss
from cirbench.weights.layouts import module_layout, register_layout
from cirbench.weights.manager import WeightFile, register_weight

ADM_FILE = register_weight(
    WeightFile(
        "256x256_diffusion_uncond.pt",
        "https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt",
        "",  # OpenAI publishes no checksum: imported as unverified after a layout check
        "DiffLoss prior: OpenAI ADM 256x256 unconditional ImageNet diffusion model (guided-diffusion)",
        "MIT",
    )
)
register_layout(ADM_FILE.filename, lambda: module_layout(ADMUNet(ADMConfig())))
DEVIATION = (
    "the restored branch runs with autograd through the frozen prior (the released code wraps both prior passes "
    "in no_grad, so its DiffLoss terms never reach the restoration network)"
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_prior(path: str | Path | None, config: ADMConfig) -> ADMUNet:
    """The ADM prior: the canonical file (from the cache) or ``path``, a raw tensor state dict loaded strictly."""
    from cirbench.models.checkpoints import load_state_dict, load_strict
    from cirbench.weights.manager import ensure_weight

    file = Path(path) if path else ensure_weight(ADM_FILE.filename)
    with torch.device("meta"):
        prior = ADMUNet(config)
    state = load_state_dict(file)
    prior = prior.to_empty(device="cpu")
    load_strict(prior, state)
    return prior


class DiffLoss(nn.Module):
    """loss(restored, target) for images in [0, 1]; see the module docstring and README for every choice."""

    def __init__(self, prior: ADMUNet, fidelity_weight: float = 1.0, naturalness_weight: float = 1e-3,
                 semantic_weight: float = 1e-6, t_min: int = 0, t_max: int = 999, seed: int = 0,
                 dtype: str = "float32", gradient_checkpointing: bool = False) -> None:  # fmt: skip
        super().__init__()
        if dtype not in DTYPES:
            raise ConfigError(f"loss.dtype must be one of {', '.join(DTYPES)}, got '{dtype}'")
        self.schedule = NoiseSchedule(adm_linear_betas(1000))
        if not 0 <= t_min <= t_max < self.schedule.num_steps:
            raise ConfigError(f"loss.t_min/t_max must satisfy 0 <= t_min <= t_max <= 999, got {t_min}, {t_max}")
        self.prior = prior.eval().requires_grad_(False)
        self.prior.gradient_checkpointing = bool(gradient_checkpointing)
        self.weights = (float(fidelity_weight), float(naturalness_weight), float(semantic_weight))
        self.t_range, self.seed, self.dtype_name = (int(t_min), int(t_max)), int(seed), dtype
        self.step = 0
        self.last: dict[str, float] = {}

    def set_step(self, step: int) -> None:
        """t and ε of a step depend on (seed, step) only, so a resumed run draws what an uninterrupted one did."""
        self.step = int(step)

    def describe(self) -> dict[str, Any]:
        """What the run record keeps of this loss (see the trainer's run_record)."""
        weights = dict(zip(("fidelity", "naturalness", "semantic"), self.weights, strict=True))
        return {"weights": weights, "t_range": list(self.t_range), "seed": self.seed, "dtype": self.dtype_name,
                "prior_config": repr(self.prior.config), "deviation_from_released_code": DEVIATION}  # fmt: skip

    def train(self, mode: bool = True) -> DiffLoss:  # the prior stays in eval mode
        super().train(mode)
        self.prior.eval()
        return self

    def _draw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        generator = keyed_generator(f"diffloss-{self.seed}-{self.step}".encode())
        t = torch.randint(self.t_range[0], self.t_range[1] + 1, (x.shape[0],), generator=generator)
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        return t.to(x.device), noise.to(x.device)

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect-pad H and W up to the prior's multiple (what the restoration net sees is unchanged)."""
        m = self.prior.config.size_multiple
        pad_h, pad_w = (-x.shape[-2]) % m, (-x.shape[-1]) % m
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x

    def _prior(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.is_cuda and self.dtype_name != "float32":
            with torch.autocast("cuda", dtype=DTYPES[self.dtype_name]):
                out, middle = self.prior(x, t)
        else:
            out, middle = self.prior(x, t)
        return out[:, :3].float(), middle.float()

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        restored, truth = self._fit(output.float() * 2 - 1), self._fit(target.float() * 2 - 1)
        t, noise = self._draw(restored)
        with torch.no_grad():
            eps_truth, h_truth = self._prior(self.schedule.q_sample(truth, t, noise), t)
        eps_restored, h_restored = self._prior(self.schedule.q_sample(restored, t, noise), t)
        fidelity = F.mse_loss(restored, truth)
        naturalness = F.mse_loss(eps_restored, eps_truth)
        semantic = F.mse_loss(h_restored, h_truth)
        w_fid, w_nat, w_sem = self.weights
        self.last = {"fidelity": float(fidelity.detach()), "naturalness": float(naturalness.detach()),
                     "semantic": float(semantic.detach()), "t_mean": float(t.float().mean())}  # fmt: skip
        return w_fid * fidelity + w_nat * naturalness + w_sem * semantic


@register_loss("diffloss")
def diffloss(prior: str = "", prior_config: dict[str, Any] | None = None, **options: Any) -> DiffLoss:
    """``[loss]`` options: prior (path; default the canonical 256x256_diffusion_uncond.pt), prior_config (ADMConfig
    fields, for a non-official prior), fidelity_weight, naturalness_weight, semantic_weight, t_min, t_max, seed,
    dtype (float32 | bfloat16 | float16, on CUDA), gradient_checkpointing."""
    fields = dict(prior_config or {})
    for name in ("attention_resolutions", "channel_mult"):
        if name in fields:
            fields[name] = tuple(fields[name])
    try:
        config = ADMConfig(**fields)
    except TypeError as exc:
        raise ConfigError(f"loss.prior_config: {exc}") from exc
    return DiffLoss(load_prior(prior or None, config), **options)
