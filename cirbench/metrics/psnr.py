"""PSNR on 8-bit images, per image, in dB: 10*log10(255^2 / MSE) on RGB, BT.601 Y or full-range Y.

Inputs are rounded onto the 0..255 grid; RGB uses exact integer differences with float64 sums; identical -> +inf.
"""

from __future__ import annotations

import torch

from cirbench.metrics import METRICS, MetricInfo
from cirbench.metrics._base import crop
from cirbench.metrics._planes import PlanesMetric

PEAK = 255.0
EXACT_CHUNK = 256  # 256 * 255^2 < 2^24: sums of 256 squared 8-bit differences are exact in float32


def squared_sum_8bit(diff: torch.Tensor) -> torch.Tensor:
    """Exact per-image sum of squares of integer-valued float32 differences (|d| <= 255), as float64."""
    squares = diff.square().reshape(diff.shape[0], -1)
    whole = squares.shape[1] // EXACT_CHUNK * EXACT_CHUNK
    partial = squares[:, :whole].reshape(squares.shape[0], -1, EXACT_CHUNK).sum(dim=-1)
    return partial.to(torch.float64).sum(dim=1) + squares[:, whole:].to(torch.float64).sum(dim=1)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """dB from a per-image MSE on the 0..255 scale (+inf where mse == 0)."""
    return 10.0 * torch.log10(PEAK**2 / mse)


@METRICS.register("psnr")
class PSNR(PlanesMetric):
    """Peak signal-to-noise ratio of each pair (mean over images is taken by the caller)."""

    info = MetricInfo(
        name="psnr",
        higher_better=True,
        range=(0.0, float("inf")),
        needs_weights=False,
        kind="paired",
        description="PSNR in dB on 8-bit values (MAX 255), per image; channel rgb, y (BT.601 studio) or y_full",
    )

    def __init__(self, device: str = "cpu", channel: str = "rgb", crop_border: int = 0, round_y: bool = False) -> None:
        super().__init__(device, channel, crop_border, round_y)
        self._record(peak=PEAK)

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        if self.channel == "rgb":  # 8-bit differences are exact integers in float32; the sum runs in float64
            diff = crop(ref.float() - test.float(), self.crop_border).mul_(PEAK).round_()
            mse = squared_sum_8bit(diff) / diff[0].numel()
            return psnr_from_mse(mse)
        a, b = self.planes(ref), self.planes(test)
        return psnr_from_mse((a - b).square().mean(dim=(1, 2, 3)))
