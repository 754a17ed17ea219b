"""Base of the pixel-wise full-reference metrics (PSNR, PSNR-B, SSIM, MS-SSIM): which planes they compare.
Holds the channel (rgb, y, y_full), crop_border and round_y options and turns an image into those planes.
"""

from __future__ import annotations

import torch

from cirbench.metrics._base import PairedMetric, crop, to_8bit_grid
from cirbench.metrics.color import check_channel, select_channels


class PlanesMetric(PairedMetric):
    """A paired metric computed on the 0..255 planes of ``channel``, with ``crop_border`` pixels cut off each side."""

    reads_8bit = True  # uint8 input is the grid itself: no /255 and no rounding back

    def __init__(self, device: str = "cpu", channel: str = "rgb", crop_border: int = 0, round_y: bool = False) -> None:
        super().__init__(device)
        self.channel = check_channel(channel)
        self.crop_border = int(crop_border)
        self.round_y = bool(round_y)
        self._record(channel=self.channel, crop_border=self.crop_border, round_y=self.round_y)

    def planes(self, image: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [0,1] -> float64 [B,C,H',W'] on the 8-bit grid: the selected channel(s), border cropped."""
        return crop(self.uncropped_planes(image), self.crop_border)

    def uncropped_planes(self, image: torch.Tensor) -> torch.Tensor:
        """``planes`` without the crop: per pixel, so it can run a band of rows at a time."""
        return select_channels(to_8bit_grid(image), self.channel, self.round_y)

    @property
    def plane_count(self) -> int:
        """How many planes ``planes`` gives per image: 3 for rgb, 1 for a luma channel."""
        return 3 if self.channel == "rgb" else 1
