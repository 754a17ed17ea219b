"""PSNR-B (Yim & Bovik, IEEE TIP 2011): PSNR with a blocking-effect factor (BEF) of the test image, B = 8.

Counts follow the paper and KAIR's calculate_psnrb (N_HB = H*(floor(W/B) - 1)); per channel, averaged in dB.
"""

from __future__ import annotations

import math

import torch

from cirbench.metrics import METRICS, MetricInfo
from cirbench.metrics._planes import PlanesMetric
from cirbench.metrics.psnr import psnr_from_mse


def _boundary_split(diff_sq: torch.Tensor, dim: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over (block boundaries, all other neighbour pairs) of squared differences along ``dim``."""
    positions = torch.arange(block - 1, diff_sq.shape[dim], block, device=diff_sq.device)
    on_boundary = diff_sq.index_select(dim, positions).sum(dim=(-2, -1))
    return on_boundary, diff_sq.sum(dim=(-2, -1)) - on_boundary


def blocking_effect_factor(image: torch.Tensor, block: int = 8) -> torch.Tensor:
    """[B,C] BEF of a [B,C,H,W] image (0..255 scale): eta * (mean boundary - mean non-boundary sq. difference)."""
    height, width = image.shape[-2:]
    horizontal = (image[..., :, 1:] - image[..., :, :-1]).square()  # pairs (i, i+1) along the width
    vertical = (image[..., 1:, :] - image[..., :-1, :]).square()
    hb, hbc = _boundary_split(horizontal, -1, block)
    vb, vbc = _boundary_split(vertical, -2, block)
    n_hb = height * (width // block - 1)
    n_vb = width * (height // block - 1)
    n_hbc = height * (width - 1) - n_hb
    n_vbc = width * (height - 1) - n_vb
    mean_b = (hb + vb) / (n_hb + n_vb)
    mean_bc = (hbc + vbc) / (n_hbc + n_vbc)
    eta = math.log2(block) / math.log2(min(height, width))
    return torch.where(mean_b > mean_bc, eta * (mean_b - mean_bc), torch.zeros_like(mean_b))


@METRICS.register("psnrb")
class PSNRB(PlanesMetric):
    """PSNR-B per image pair; the BEF is measured on the test (restored or decoded) image."""

    info = MetricInfo(
        name="psnrb",
        higher_better=True,
        range=(0.0, float("inf")),
        needs_weights=False,
        kind="paired",
        description="PSNR-B (Yim & Bovik 2011), B=8, BEF of the test image, per-channel dB mean (MAX 255)",
    )

    def __init__(
        self, device: str = "cpu", channel: str = "rgb", crop_border: int = 0, round_y: bool = False, block: int = 8
    ) -> None:
        super().__init__(device, channel, crop_border, round_y)
        self.block = int(block)
        self._record(block=self.block)

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        a, b = self.planes(ref), self.planes(test)
        mse = (a - b).square().mean(dim=(2, 3))
        return psnr_from_mse(mse + blocking_effect_factor(b, self.block)).mean(dim=1)
