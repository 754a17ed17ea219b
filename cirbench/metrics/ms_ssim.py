"""MS-SSIM (Wang, Simoncelli & Bovik 2003): five scales, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).

Same window and constants as SSIM, 2x2 average pooling between scales (odd sides zero-padded), as in
pytorch_msssim (used by CompressAI); negative terms are clipped to 0; RGB is the mean of per-channel values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cirbench.metrics import METRICS, MetricError, MetricInfo
from cirbench.metrics._planes import PlanesMetric
from cirbench.metrics.ssim import SIGMA, WINDOW_SIZE, gaussian_1d, ssim_means

SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MIN_SIDE = (WINDOW_SIZE - 1) * 2 ** (len(SCALE_WEIGHTS) - 1) + 1  # 161: the coarsest scale still holds a window


def ms_ssim_per_channel(a: torch.Tensor, b: torch.Tensor, taps: torch.Tensor, clip_cs_map: bool = False) -> torch.Tensor:
    """[B,C] MS-SSIM of two [B,C,H,W] float64 images on the 0..255 scale."""
    if min(a.shape[-2:]) < MIN_SIDE:
        raise MetricError(f"MS-SSIM needs both sides >= {MIN_SIDE} px (5 scales), got {tuple(a.shape[-2:])}")
    weights = torch.tensor(SCALE_WEIGHTS, dtype=torch.float64, device=a.device)
    terms = []
    for level in range(len(SCALE_WEIGHTS)):
        ssim_mean, cs_mean = ssim_means(a, b, taps, clip_cs_map=clip_cs_map)
        if level == len(SCALE_WEIGHTS) - 1:
            terms.append(torch.relu(ssim_mean))
            break
        terms.append(torch.relu(cs_mean))
        padding = [side % 2 for side in a.shape[-2:]]
        a = F.avg_pool2d(a, kernel_size=2, padding=padding)
        b = F.avg_pool2d(b, kernel_size=2, padding=padding)
    return torch.prod(torch.stack(terms) ** weights.view(-1, 1, 1), dim=0)


@METRICS.register("ms_ssim")
class MSSSIM(PlanesMetric):
    """Multi-scale SSIM per image pair (needs both sides >= 161 px)."""

    info = MetricInfo(
        name="ms_ssim",
        higher_better=True,
        range=(0.0, 1.0),
        needs_weights=False,
        kind="paired",
        description="MS-SSIM, 5 scales, Gaussian 11x11 sigma 1.5, L 255 (pytorch_msssim / CompressAI convention)",
    )

    def __init__(
        self, device: str = "cpu", channel: str = "rgb", crop_border: int = 0, round_y: bool = False,
        clip_cs_map: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(device, channel, crop_border, round_y)
        self.clip_cs_map = bool(clip_cs_map)
        self._record(
            clip_cs_map=self.clip_cs_map,
            window=WINDOW_SIZE,
            sigma=SIGMA,
            scale_weights=list(SCALE_WEIGHTS),
            data_range=255.0,
        )
        self._taps = gaussian_1d(WINDOW_SIZE, SIGMA, torch.float64, self.device)

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        a, b = self.planes(ref), self.planes(test)
        return ms_ssim_per_channel(a, b, self._taps, self.clip_cs_map).mean(dim=1)
