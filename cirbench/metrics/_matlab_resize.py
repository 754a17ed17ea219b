"""MATLAB ``imresize`` (bicubic, a = -0.5, antialiased when shrinking, symmetric borders) as resampling matrices.

Each axis becomes a dense [out, in] matrix, so a batch of planes resizes with two matmuls on any device.
"""

from __future__ import annotations

import math

import torch

KERNEL_WIDTH = 4.0  # bicubic support, in input pixels at scale 1


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _mirror(index: torch.Tensor, length: int) -> torch.Tensor:
    """MATLAB's symmetric padding: -1 -> 0, -2 -> 1, length -> length-1, ... (0-based)."""
    period = 2 * length
    index = torch.remainder(index, period)
    return torch.where(index >= length, period - 1 - index, index)


def resize_matrix(in_length: int, scale: float, dtype=torch.float64, device=None) -> torch.Tensor:
    """[ceil(in*scale), in] matrix M with out = M @ in along one axis, as MATLAB imresize computes it."""
    out_length = math.ceil(in_length * scale)
    width = KERNEL_WIDTH / scale if scale < 1 else KERNEL_WIDTH
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    centre = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate of each output sample
    left = torch.floor(centre - width / 2.0)
    taps = math.ceil(width) + 2
    index = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = centre[:, None] - index
    weights = scale * _cubic(distance * scale) if scale < 1 else _cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    columns = _mirror(index.long() - 1, in_length)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, columns, weights)
    return matrix.to(dtype=dtype, device=device)


def imresize(planes: torch.Tensor, scale: float) -> torch.Tensor:
    """Resize [..., H, W] planes by ``scale`` (both axes) with MATLAB's bicubic imresize, in their dtype."""
    rows = resize_matrix(planes.shape[-2], scale, planes.dtype, planes.device)
    cols = resize_matrix(planes.shape[-1], scale, planes.dtype, planes.device)
    return rows @ planes @ cols.transpose(0, 1)
