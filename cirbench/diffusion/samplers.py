"""Samplers over a respaced discrete schedule: ancestral DDPM (ldm's fixed-small posterior) and deterministic DDIM.

The model is an eps-predictor called with the original (un-respaced) timestep indices; all noise is seeded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cirbench.diffusion.schedules import NoiseSchedule, evenly_spaced_steps, sd_linear_betas
from cirbench.errors import ConfigError

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# one generator for a whole batch, or one per sample (row i of every noise tensor from generator i)
Generators = torch.Generator | Sequence[torch.Generator] | None
SAMPLERS = ("ddpm", "ddim")


def keyed_generator(key: bytes) -> torch.Generator:
    """A CPU generator seeded from the sha256 of ``key``: the same key gives the same stream on every machine."""
    digest = hashlib.sha256(key).digest()
    return torch.Generator(device="cpu").manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def seeded_noise(like: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generators' device (same bits on CPU and CUDA hosts)."""
    if isinstance(generator, Sequence):
        if len(generator) != like.shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {like.shape[0]}")
        rows = [torch.randn(like.shape[1:], generator=g, device=g.device, dtype=torch.float32) for g in generator]
        noise = torch.stack(rows) if rows else torch.empty(like.shape)
    else:
        device = generator.device if generator is not None else like.device
        noise = torch.randn(like.shape, generator=generator, device=device, dtype=torch.float32)
    return noise.to(device=like.device, dtype=like.dtype)


def ldm_buffers(schedule: NoiseSchedule) -> dict[str, np.ndarray]:
    """The 12 schedule buffers ldm's DDPM registers (float64 here; checkpoints store them as float32)."""
    betas = schedule.betas
    abar = np.cumprod(1.0 - betas)
    abar_prev = np.append(1.0, abar[:-1])
    variance = betas * (1.0 - abar_prev) / (1.0 - abar)
    return {
        "betas": betas,
        "alphas_cumprod": abar,
        "alphas_cumprod_prev": abar_prev,
        "sqrt_alphas_cumprod": np.sqrt(abar),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - abar),
        "log_one_minus_alphas_cumprod": np.log(1.0 - abar),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / abar),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / abar - 1.0),
        "posterior_variance": variance,
        "posterior_log_variance_clipped": np.log(np.maximum(variance, 1e-20)),
        "posterior_mean_coef1": betas * np.sqrt(abar_prev) / (1.0 - abar),
        "posterior_mean_coef2": (1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar),
    }


@dataclass(frozen=True)
class SamplerSettings:
    method: str = "ddpm"
    steps: int = 200
    train_steps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.012

    def __post_init__(self) -> None:
        if self.method not in SAMPLERS:
            raise ConfigError(f"unknown sampler '{self.method}' (known: {', '.join(SAMPLERS)})")
        if not 1 <= self.steps <= self.train_steps:
            raise ConfigError(f"steps must lie in 1..{self.train_steps}, got {self.steps}")

    def base_schedule(self) -> NoiseSchedule:
        return NoiseSchedule(sd_linear_betas(self.train_steps, self.linear_start, self.linear_end))

    def schedule(self) -> NoiseSchedule:
        """The respaced schedule (StableSR's space_timesteps with one section: evenly spaced, ends included)."""
        return self.base_schedule().respaced(evenly_spaced_steps(self.train_steps, self.steps))


def _ddpm_step(buffers: dict[str, np.ndarray], i: int, x: torch.Tensor, eps: torch.Tensor,
               generator: Generators) -> torch.Tensor:
    x0 = buffers["sqrt_recip_alphas_cumprod"][i] * x - buffers["sqrt_recipm1_alphas_cumprod"][i] * eps
    mean = buffers["posterior_mean_coef1"][i] * x0 + buffers["posterior_mean_coef2"][i] * x
    if i == 0:
        return mean
    return mean + float(np.exp(0.5 * buffers["posterior_log_variance_clipped"][i])) * seeded_noise(x, generator)


def _ddim_step(abar: np.ndarray, i: int, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    x0 = (x - float(np.sqrt(1.0 - abar[i])) * eps) / float(np.sqrt(abar[i]))
    prev = abar[i - 1] if i > 0 else 1.0
    return float(np.sqrt(prev)) * x0 + float(np.sqrt(1.0 - prev)) * eps


def sample(eps_fn: EpsFn, start: torch.Tensor, settings: SamplerSettings,
           generator: Generators = None, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run the reverse process from ``start`` (x_T) down to x_0 over the respaced steps."""
    schedule = settings.schedule()
    buffers = ldm_buffers(schedule)
    x = start
    for i in reversed(range(schedule.num_steps)):
        t = torch.full((x.shape[0],), schedule.timesteps[i], device=x.device, dtype=torch.long)
        eps = eps_fn(x, t).to(x.dtype)
        if settings.method == "ddpm":
            x = _ddpm_step(buffers, i, x, eps, generator)
        else:
            x = _ddim_step(buffers["alphas_cumprod"], i, x, eps)
        if progress is not None:
            progress(schedule.num_steps - i)
    return x
