"""Feeding a model images of any size: reflect padding to its size multiple, and tiled inference with blending.

Tiles overlap and are blended with integer ramp weights accumulated in float64, so a pointwise model gives
bit-for-bit the untiled result (every sum w*f is exact and (W*f)/W rounds back to f), provided its kernels
give the same bits at any tensor shape (transcendental SIMD kernels may differ by an ulp in a tensor's tail).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from cirbench.errors import ConfigError

RestoreFn = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad [B,C,H,W] at the bottom/right to multiples of ``multiple``; returns (padded, (H, W)).

    Reflect padding (no edge pixel repeated); replicate where the image is too small to reflect.
    """
    height, width = image.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image, (height, width)
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode), (height, width)


def crop_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return image[..., : size[0], : size[1]]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with at least ``overlap`` shared pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp(size: int, overlap: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Integer blending weights 1, 2, ..., overlap+1, ..., 2, 1 (flat in the middle)."""
    index = torch.arange(size, dtype=torch.int64)
    weights = torch.minimum(torch.minimum(index + 1, size - index), torch.tensor(overlap + 1))
    return weights.to(dtype)


def check_tiling(tile: int, overlap: int, multiple: int) -> None:
    if tile < 1 or overlap < 0 or overlap >= tile:
        raise ConfigError(f"tiling needs tile >= 1 and 0 <= overlap < tile (got tile {tile}, overlap {overlap})")
    if tile % multiple:
        raise ConfigError(f"tile size {tile} must be a multiple of the model's size multiple {multiple}")


def restore_tiled(restore: RestoreFn, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Run ``restore`` on overlapping tiles of [B,C,H,W] ``image`` and blend them back into one image."""
    height, width = image.shape[-2:]
    tile_h, tile_w = min(tile, height), min(tile, width)
    weight = ramp(tile_h, overlap).to(image.device)[:, None] * ramp(tile_w, overlap).to(image.device)[None, :]
    total = torch.zeros(image.shape, dtype=torch.float64, device=image.device)
    weight_sum = torch.zeros((height, width), dtype=torch.float64, device=image.device)
    for top in tile_starts(height, tile_h, overlap):
        for left in tile_starts(width, tile_w, overlap):
            window = (slice(None), slice(None), slice(top, top + tile_h), slice(left, left + tile_w))
            out = restore(image[window])
            if out.shape != image[window].shape:
                raise ConfigError(f"model returned shape {tuple(out.shape)} for a tile of {tuple(image[window].shape)}")
            total[window] += out.to(torch.float64) * weight
            weight_sum[window[2:]] += weight
    return (total / weight_sum).to(image.dtype)


def restore_any_size(
    restore: RestoreFn, image: torch.Tensor, multiple: int = 1, tile: int | None = None, overlap: int = 0
) -> torch.Tensor:
    """Pad to ``multiple``, restore whole or tiled, crop back to the input size."""
    padded, size = pad_to_multiple(image, multiple)
    if tile is None:
        out = restore(padded)
        if out.shape != padded.shape:
            raise ConfigError(f"model returned shape {tuple(out.shape)} for an input of {tuple(padded.shape)}")
    else:
        check_tiling(tile, overlap, multiple)
        out = restore_tiled(restore, padded, tile, overlap)
    return crop_to(out, size)
