"""SSIM (Wang et al. 2004) per image: 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, L 255, 'valid' filtering.

Computed in float64 on the 0..255 grid with a separable window; RGB is the mean of per-channel SSIM.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cirbench.metrics import METRICS, MetricError, MetricInfo
from cirbench.metrics._base import crop
from cirbench.metrics._cpu_pool import map_bands
from cirbench.metrics._planes import PlanesMetric

WINDOW_SIZE = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0


def gaussian_1d(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian taps (the outer product with itself is MATLAB's fspecial('gaussian'))."""
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    taps = torch.exp(-(coords**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def _filter_axis(planes: torch.Tensor, weights: list[float], dim: int) -> torch.Tensor:
    """'valid' correlation of ``planes`` with the 1-D window ``weights`` along ``dim`` (shifted, scaled adds)."""
    n = planes.shape[dim] - len(weights) + 1
    out = planes.narrow(dim, 0, n) * weights[0]
    for i, weight in enumerate(weights[1:], start=1):
        out.add_(planes.narrow(dim, i, n), alpha=weight)
    return out


def filter_valid(planes: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of every plane of [N,C,H,W] (float64 stays exact to ~1e-13).

    Columns first: a band of rows then filters only its output rows along x (no halo rows), ~10 % less work."""
    weights = taps.tolist()
    return _filter_axis(_filter_axis(planes, weights, -2), weights, -1)


def ssim_maps(
    a: torch.Tensor, b: torch.Tensor, taps: torch.Tensor, data_range: float = DATA_RANGE, clip_cs_map: bool = False
):
    """(ssim_map, cs_map) of two [B,C,H,W] float64 images, both of the 'valid' size (in-place arithmetic).

    ``clip_cs_map`` sets negative contrast-structure values to 0 per pixel before they enter the SSIM map (pyiqa).
    """
    if min(a.shape[-2:]) < taps.numel():
        raise MetricError(f"SSIM needs images of at least {taps.numel()}x{taps.numel()}, got {tuple(a.shape[-2:])}")
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    channels = a.shape[1]
    planes = torch.empty((a.shape[0], 4 * channels) + a.shape[2:], dtype=torch.float64, device=a.device)
    planes[:, :channels] = a
    planes[:, channels : 2 * channels] = b
    torch.mul(a, a, out=planes[:, 2 * channels : 3 * channels]).addcmul_(b, b)
    torch.mul(a, b, out=planes[:, 3 * channels :])
    mu_a, mu_b, e_sq, e_ab = filter_valid(planes, taps).split(channels, dim=1)
    mu_ab = mu_a * mu_b
    mu_sq = mu_a.square_().addcmul_(mu_b, mu_b)
    cs_map = e_ab.sub_(mu_ab).mul_(2.0).add_(c2).div_(e_sq.sub_(mu_sq).add_(c2))
    if clip_cs_map:
        cs_map.clamp_(min=0.0)
    ssim_map = mu_ab.mul_(2.0).add_(c1).div_(mu_sq.add_(c1)).mul_(cs_map)
    return ssim_map, cs_map


CHUNK_ELEMENTS = 1 << 17  # pixels of all images and channels in one band of rows: its planes stay in cache


def band_rows(planes: int, width: int) -> int:
    """Output rows of one band: CHUNK_ELEMENTS pixels over all ``planes`` (images x channels), at least 8."""
    return max(8, CHUNK_ELEMENTS // max(1, planes * width))


def _same(planes: torch.Tensor) -> torch.Tensor:
    return planes


def ssim_means(
    a: torch.Tensor, b: torch.Tensor, taps: torch.Tensor, rows: int | None = None, clip_cs_map: bool = False,
    to_planes: Callable[[torch.Tensor], torch.Tensor] = _same, channels: int | None = None,
):  # fmt: skip
    """([B,C] mean SSIM, [B,C] mean cs) over the 'valid' maps, computed a band of output rows at a time.

    ``to_planes`` turns a band of rows of ``a``/``b`` into float64 planes (``channels`` of them, default: as many as
    ``a`` has): converting a band at a time keeps every intermediate in cache and off the allocator.
    """
    channels = a.shape[1] if channels is None else channels
    if rows is None:
        rows = band_rows(a.shape[0] * channels, a.shape[-1])
    k = taps.numel()
    out_rows = a.shape[-2] - k + 1

    def band_sums(start: int) -> tuple[torch.Tensor, torch.Tensor]:
        stop = min(start + rows, out_rows) + k - 1
        band_a, band_b = to_planes(a[..., start:stop, :]), to_planes(b[..., start:stop, :])
        ssim_map, cs_map = ssim_maps(band_a, band_b, taps, clip_cs_map=clip_cs_map)
        return ssim_map.sum(dim=(2, 3)), cs_map.sum(dim=(2, 3))

    sums = map_bands(band_sums, range(0, max(out_rows, 1), rows), a.device)
    count = out_rows * (a.shape[-1] - k + 1)
    ssim_sum = torch.stack([band[0] for band in sums]).sum(dim=0)
    cs_sum = torch.stack([band[1] for band in sums]).sum(dim=0)
    return ssim_sum / count, cs_sum / count


@METRICS.register("ssim")
class SSIM(PlanesMetric):
    """Structural similarity per image pair, per Wang 2004 / MATLAB ssim_index.m / BasicSR."""

    info = MetricInfo(
        name="ssim",
        higher_better=True,
        range=(-1.0, 1.0),
        needs_weights=False,
        kind="paired",
        description="SSIM (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, L 255, valid), per image; rgb = channel mean",
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
            k1=K1,
            k2=K2,
            data_range=DATA_RANGE,
            padding="valid",
        )
        self._taps = gaussian_1d(WINDOW_SIZE, SIGMA, torch.float64, self.device)

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        a, b = crop(ref, self.crop_border), crop(test, self.crop_border)
        ssim_mean, _ = ssim_means(
            a, b, self._taps, clip_cs_map=self.clip_cs_map, to_planes=self.uncropped_planes, channels=self.plane_count
        )
        return ssim_mean.mean(dim=1)
