"""NIQE in BasicSR's float32 arithmetic (numpy/scipy planes and statistics, torch float32 resize), one image at a time.

The float64 path in niqe.py is MATLAB's double arithmetic; this one reproduces BasicSR's calculate_niqe (0.0 measured).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cirbench.metrics._niqe_math import BLOCK, SHIFTS, shape_table


def _aggd32(values: np.ndarray) -> tuple[float, float, float]:
    """(alpha, beta_l, beta_r) of a float32 vector, with numpy's float32 means as BasicSR takes them."""
    grid, ratio, _, _ = shape_table()
    left = np.sqrt(np.mean(values[values < 0] ** 2))
    right = np.sqrt(np.mean(values[values > 0] ** 2))
    gammahat = left / right
    rhat = (np.mean(np.abs(values))) ** 2 / np.mean(values**2)
    rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    alpha = grid[np.argmin((ratio - rhatnorm) ** 2)]
    from scipy.special import gamma

    scale = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * scale, right * scale


def _features32(block: np.ndarray) -> list[float]:
    from scipy.special import gamma

    alpha, beta_l, beta_r = _aggd32(block.flatten())
    features = [alpha, (beta_l + beta_r) / 2]
    for shift in SHIFTS:
        alpha, beta_l, beta_r = _aggd32((block * np.roll(block, shift, axis=(0, 1))).flatten())
        features += [alpha, (beta_r - beta_l) * (gamma(2 / alpha) / gamma(1 / alpha)), beta_l, beta_r]
    return features


def _cubic32(x: torch.Tensor) -> torch.Tensor:
    ax = torch.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * ((ax <= 1).type_as(ax))
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (((ax > 1) * (ax <= 2)).type_as(ax))
    return near + far


def _taps32(in_length: int, scale: float) -> tuple[torch.Tensor, list[int], int, int]:
    """float32 weights [out, taps], each output's first index into the mirrored line, and the two pad lengths."""
    out_length = math.ceil(in_length * scale)
    width = 4 / scale
    u = torch.linspace(1, out_length, out_length) / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    index = left.view(-1, 1) + torch.linspace(0, taps - 1, taps).view(1, -1)
    weights = scale * _cubic32((u.view(-1, 1) - index) * scale)
    weights = weights / torch.sum(weights, 1).view(-1, 1)
    zeros = torch.sum(weights == 0, 0)
    if zeros[0] != 0:  # taps that no output uses are trimmed as imresize trims them (keeping taps - 2)
        index, weights = index[:, 1 : taps - 1], weights[:, 1 : taps - 1]
    if zeros[-1] != 0:
        index, weights = index[:, : taps - 2], weights[:, : taps - 2]
    pad_start, pad_end = int(-index.min() + 1), int(index.max() - in_length)
    return weights.contiguous(), [int(i) + pad_start - 1 for i in index[:, 0]], pad_start, pad_end


def _mirrored(image: torch.Tensor, dim: int, pad_start: int, pad_end: int) -> torch.Tensor:
    length = image.shape[dim]
    parts = [image.narrow(dim, 0, pad_start).flip(dim), image]
    if pad_end > 0:
        parts.append(image.narrow(dim, length - pad_end, pad_end).flip(dim))
    return torch.cat(parts, dim)


def resize_half32(plane: np.ndarray) -> np.ndarray:
    """MATLAB imresize(plane, 0.5) in float32 torch arithmetic: columns first, then rows, one matrix-vector
    product per output line in the memory order BasicSR uses (so BLAS sums in the same order)."""
    image = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))
    weights, first, pad_start, pad_end = _taps32(image.shape[0], 0.5)
    padded, taps = _mirrored(image, 0, pad_start, pad_end), weights.shape[1]
    image = torch.stack([padded[i : i + taps, :].transpose(0, 1).mv(weights[k]) for k, i in enumerate(first)], 0)
    weights, first, pad_start, pad_end = _taps32(image.shape[1], 0.5)
    padded, taps = _mirrored(image, 1, pad_start, pad_end), weights.shape[1]
    return torch.stack([padded[:, i : i + taps].mv(weights[k]) for k, i in enumerate(first)], 1).numpy()


def niqe32(y: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, window: np.ndarray) -> float:
    """NIQE of one rounded float32 Y plane (cut to whole blocks inside), in BasicSR's arithmetic."""
    from scipy.ndimage import convolve

    rows, cols = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    image = y[: rows * BLOCK, : cols * BLOCK]
    per_scale = []
    for scale in (1, 2):
        mu = convolve(image, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(np.square(image), window, mode="nearest") - np.square(mu)))
        normalised = (image - mu) / (sigma + 1)
        size = BLOCK // scale
        per_scale.append(np.array([
            _features32(normalised[r * size : (r + 1) * size, c * size : (c + 1) * size])
            for c in range(cols) for r in range(rows)
        ]))  # fmt: skip
        if scale == 1:
            image = resize_half32(image / 255.0) * 255.0
    features = np.concatenate(per_scale, axis=1)
    mu = np.nanmean(features, axis=0)
    cov = np.cov(features[~np.isnan(features).any(axis=1)], rowvar=False)
    gap = mu_pris - mu
    return float(np.squeeze(np.sqrt(np.matmul(np.matmul(gap, np.linalg.pinv((cov_pris + cov) / 2)), gap.T))))
