"""Inference protocol of PromptCIR's official test script, reusable: mirror padding to a multiple (strictly
greater), square overlapping tiles averaged without blending, clamping, and a model x transpose self-ensemble.

Differences from the official script, on purpose (the script fails on small images):
  * padding larger than the image side reflects again (numpy 'symmetric' mode) instead of running short;
  * when the padded short side is <= the overlap (32, 64 or 96 px: stride <= 0, so the script crashes or
    leaves NaN pixels), tiles become rectangles spanning the short side. Other sizes tile exactly as the script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cirbench.errors import ConfigError

Network = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MirrorTiling:
    """Parameters of the protocol; the defaults are those of PromptCIR's test script."""

    multiple: int = 32
    strictly_greater: bool = True  # a side already a multiple still gets ``multiple`` extra pixels
    tile: int | None = 384  # None: the whole padded image in one pass
    overlap: int = 96
    transpose_ensemble: bool = True  # also run on the H/W-transposed image and average

    def __post_init__(self) -> None:
        if self.multiple < 1:
            raise ConfigError(f"padding multiple must be >= 1, got {self.multiple}")
        if self.tile is not None and (self.tile % self.multiple or self.tile <= 0):
            raise ConfigError(f"tile {self.tile} must be a positive multiple of {self.multiple}")
        if self.overlap < 0 or (self.tile is not None and self.overlap >= self.tile):
            raise ConfigError(f"overlap must satisfy 0 <= overlap < tile, got {self.overlap}")


def symmetric_indices(length: int, padded: int, device: torch.device) -> torch.Tensor:
    """Indices 0..length-1 followed by their mirror image (edge pixel repeated), reflecting as often as needed."""
    position = torch.arange(padded, device=device) % (2 * length)
    return torch.where(position < length, position, 2 * length - 1 - position)


def padded_size(length: int, multiple: int, strictly_greater: bool) -> int:
    if strictly_greater:
        return (length // multiple + 1) * multiple
    return -(-length // multiple) * multiple


def mirror_pad(image: torch.Tensor, multiple: int, strictly_greater: bool = True) -> torch.Tensor:
    """Pad [B,C,H,W] at the bottom and right with its mirror image up to the protocol's size."""
    h, w = image.shape[-2:]
    rows = symmetric_indices(h, padded_size(h, multiple, strictly_greater), image.device)
    cols = symmetric_indices(w, padded_size(w, multiple, strictly_greater), image.device)
    return image.index_select(-2, rows).index_select(-1, cols)


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """0, stride, 2*stride ... below length-tile, then length-tile (the script's rule); [0] if one tile fits."""
    if length <= tile:
        return [0]
    return list(range(0, length - tile, stride)) + [length - tile]


def tile_shape(height: int, width: int, tile: int, overlap: int) -> tuple[int, int]:
    """The script's square tile min(tile, H, W), or per-axis sizes where that square would not cover."""
    square = min(tile, height, width)
    if square > overlap or (height == square and width == square):
        return square, square
    return min(tile, height), min(tile, width)


def tiled_average(network: Network, image: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Sum of the network's outputs on overlapping tiles divided by the coverage count, clamped to [0,1]."""
    height, width = image.shape[-2:]
    tile_h, tile_w = tile_shape(height, width, tile, overlap)
    total = torch.zeros_like(image)
    count = torch.zeros((height, width), dtype=image.dtype, device=image.device)
    for top in tile_origins(height, tile_h, tile_h - overlap):
        for left in tile_origins(width, tile_w, tile_w - overlap):
            rows, cols = slice(top, top + tile_h), slice(left, left + tile_w)
            total[..., rows, cols] += network(image[..., rows, cols])
            count[rows, cols] += 1
    return (total / count).clamp(0, 1)


def run_padded(network: Network, image: torch.Tensor, protocol: MirrorTiling) -> torch.Tensor:
    """Mirror-pad, run whole or tiled, clamp, crop back to the input size."""
    h, w = image.shape[-2:]
    padded = mirror_pad(image, protocol.multiple, protocol.strictly_greater)
    if protocol.tile is None:
        out = network(padded).clamp(0, 1)
    else:
        out = tiled_average(network, padded, protocol.tile, protocol.overlap)
    return out[..., :h, :w]


def ensemble(networks: Sequence[Network], image: torch.Tensor, protocol: MirrorTiling) -> torch.Tensor:
    """Average of every network on the image (and on its transpose, transposed back), each clamped."""
    outputs = []
    for network in networks:
        outputs.append(run_padded(network, image, protocol).clamp(0, 1))
        if protocol.transpose_ensemble:
            flipped = run_padded(network, image.transpose(-2, -1), protocol)
            outputs.append(flipped.transpose(-2, -1).clamp(0, 1))
    return torch.stack(outputs).mean(dim=0)
