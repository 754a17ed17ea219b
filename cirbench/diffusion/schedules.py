"""Discrete noise schedules (betas, cumulative alphas), forward noising q(x_t | x_0) and timestep respacing.

Written from the DDPM equations; the named schedules are ldm's ``linear`` (SD) and ADM's ``linear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cirbench.errors import ConfigError


def sd_linear_betas(steps: int = 1000, start: float = 0.00085, end: float = 0.012) -> np.ndarray:
    """ldm/Stable Diffusion's "linear" schedule: linear in sqrt(beta), then squared (float64)."""
    return np.linspace(start**0.5, end**0.5, steps, dtype=np.float64) ** 2


def adm_linear_betas(steps: int = 1000) -> np.ndarray:
    """ADM (improved/guided diffusion) "linear": 1e-4 .. 0.02 at 1000 steps, scaled by 1000/steps."""
    scale = 1000 / steps
    return np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)


@dataclass(frozen=True)
class NoiseSchedule:
    """Betas of a discrete diffusion and the quantities derived from them, all float64 numpy arrays."""

    betas: np.ndarray
    timesteps: tuple[int, ...] = ()  # original step index of each entry (respaced schedules); empty = 0..T-1

    def __post_init__(self) -> None:
        betas = np.asarray(self.betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) == 0 or not np.all((betas > 0) & (betas < 1)):
            raise ConfigError("a noise schedule needs a non-empty 1-d array of betas in (0, 1)")
        object.__setattr__(self, "betas", betas)
        if not self.timesteps:
            object.__setattr__(self, "timesteps", tuple(range(len(betas))))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, with one t per sample (indices into this schedule)."""
        abar = torch.as_tensor(self.alphas_cumprod, device=x0.device)[t.long()].to(x0.dtype)
        shape = (-1,) + (1,) * (x0.dim() - 1)
        return abar.sqrt().view(shape) * x0 + (1 - abar).sqrt().view(shape) * noise

    def respaced(self, use_steps: Sequence[int]) -> NoiseSchedule:
        """The schedule that visits only ``use_steps`` (sorted) with the same cumulative alphas there."""
        steps = sorted(set(int(s) for s in use_steps))
        if not steps or steps[0] < 0 or steps[-1] >= self.num_steps:
            raise ConfigError(f"respaced steps must lie in 0..{self.num_steps - 1}")
        abar = self.alphas_cumprod
        betas, previous = [], 1.0
        for step in steps:
            betas.append(1.0 - abar[step] / previous)
            previous = abar[step]
        return NoiseSchedule(np.array(betas), tuple(self.timesteps[s] for s in steps))


def evenly_spaced_steps(total: int, count: int) -> list[int]:
    """``count`` step indices spread evenly over 0..total-1, first and last included (one respacing section)."""
    if not 1 <= count <= total:
        raise ConfigError(f"cannot take {count} steps out of {total}")
    if count == 1:
        return [0]
    stride = (total - 1) / (count - 1)
    return [round(i * stride) for i in range(count)]
