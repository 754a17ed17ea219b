"""PSNR on 8-bit images, per image, in dB: 10*log10(255^2 / MSE) on RGB, BT.601 Y or full-range Y.

Inputs are rounded onto the 0..255 grid; RGB uses exact integer differences with float64 sums; identical -> +inf.
"""

from __future__ import annotations

import torch

from cirbench.metrics import METRICS, MetricError, MetricInfo
from cirbench.metrics._base import crop, to_8bit_grid
from cirbench.metrics._planes import PlanesMetric

PEAK = 255.0
EXACT_CHUNK = 256  # 256 * 255^2 < 2^24: sums of 256 squared 8-bit differences are exact in float32


def squared_sum_8bit(diff: torch.Tensor) -> torch.Tensor:
    """Exact per-image sum of squares of integer-valued float32 differences (|d| <= 255), as float64."""
    squares = diff.square().reshape(diff.shape[0], -1)
    whole = squares.shape[1] // EXACT_CHUNK * EXACT_CHUNK
    partial = squares[:, :whole].reshape(squares.shape[0], -1, EXACT_CHUNK).sum(dim=-1)
    return partial.to(torch.float64).sum(dim=1) + squares[:, whole:].to(torch.float64).sum(dim=1)


def grid_difference(ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """ref - test on the 0..255 grid as float32 whole numbers, from uint8 or [0,1] float images."""
    if ref.dtype == torch.uint8 and test.dtype == torch.uint8:
        return ref.to(torch.float32).sub_(test)
    if torch.uint8 in (ref.dtype, test.dtype):
        return (to_8bit_grid(ref) - to_8bit_grid(test)).to(torch.float32)
    return (ref.float() - test.float()).mul_(PEAK).round_()


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

    def __init__(self, device: str = "cpu", channel: str = "rgb", crop_border: int = 0, round_y: bool = False,
                 mse_epsilon: float = 0.0, float32: bool = False) -> None:  # fmt: skip
        super().__init__(device, channel, crop_border, round_y)
        self.mse_epsilon = float(mse_epsilon)  # added to the [0,1]-scale MSE (pyiqa: 1e-8, a ~80 dB ceiling)
        self.float32 = bool(float32)  # pyiqa's arithmetic: MSE of k/255 values, epsilon and log10 all in float32
        if self.float32 and self.channel != "rgb":
            raise MetricError("psnr float32=True reproduces pyiqa's RGB PSNR only; use channel='rgb'")
        self._record(peak=PEAK, mse_epsilon=self.mse_epsilon, float32=self.float32)

    def _db(self, mse: torch.Tensor) -> torch.Tensor:
        if self.mse_epsilon:
            return -10.0 * torch.log10(mse / PEAK**2 + self.mse_epsilon)
        return psnr_from_mse(mse)

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        if self.float32:
            a, b = (crop(to_8bit_grid(image).float() / 255.0, self.crop_border) for image in (ref, test))
            mse = torch.mean((b - a) ** 2, dim=[1, 2, 3])
            return 10 * torch.log10(1.0 / (mse + self.mse_epsilon))
        if self.channel == "rgb":  # 8-bit differences are exact integers in float32; the sum runs in float64
            diff = crop(grid_difference(ref, test), self.crop_border)
            mse = squared_sum_8bit(diff) / diff[0].numel()
            return self._db(mse)
        a, b = self.planes(ref), self.planes(test)
        return self._db((a - b).square().mean(dim=(1, 2, 3)))
