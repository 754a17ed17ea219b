"""The arithmetic of NIQE in float64 torch (MATLAB's double precision), batched over images and blocks on any device.

MSCN normalisation, 96x96 blocks at two scales, AGGD fits on a shape grid, and the distance to the pristine model.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from cirbench.metrics._matlab_resize import imresize

BLOCK = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical and both diagonal neighbour products


@functools.lru_cache(maxsize=1)
def shape_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The AGGD shape grid 0.2..10 (step 0.001, as niqe.m), its r(gamma), and the two gamma ratios per grid point."""
    from scipy.special import gamma

    grid = np.arange(0.2, 10.001, 0.001)
    ratio = np.square(gamma(2.0 / grid)) / (gamma(1.0 / grid) * gamma(3.0 / grid))
    beta_scale = np.sqrt(gamma(1.0 / grid) / gamma(3.0 / grid))
    mean_scale = gamma(2.0 / grid) / gamma(1.0 / grid)
    return grid, ratio, beta_scale, mean_scale


def aggd(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(shape alpha, left beta, right beta, mean) of an asymmetric generalised Gaussian fitted per row of [N, M]."""
    grid, ratio, beta_scale, mean_scale = (torch.from_numpy(t).to(values.device) for t in shape_table())
    squares = values.square()
    negative, positive = values < 0, values > 0
    left = (squares * negative).sum(1).div(negative.sum(1)).sqrt()
    right = (squares * positive).sum(1).div(positive.sum(1)).sqrt()
    gammahat = left / right
    rhat = values.abs().mean(1).square() / squares.mean(1)
    rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1).square()
    index = (ratio[None, :] - rhatnorm[:, None]).square().argmin(1)
    index = torch.where(torch.isnan(rhatnorm), torch.zeros_like(index), index)  # numpy's argmin of NaNs is 0
    beta_l, beta_r = left * beta_scale[index], right * beta_scale[index]
    return grid[index], beta_l, beta_r, (beta_r - beta_l) * mean_scale[index]


def block_features(blocks: torch.Tensor) -> torch.Tensor:
    """The 18 NIQE features of each [N, h, w] normalised block: AGGD of the block and of 4 neighbour products."""
    flat = blocks.reshape(blocks.shape[0], -1)
    alpha, beta_l, beta_r, _ = aggd(flat)
    columns = [alpha, (beta_l + beta_r) / 2]
    for shift in SHIFTS:  # circular within the block, as niqe.m's circshift
        product = blocks * torch.roll(blocks, shifts=shift, dims=(1, 2))
        alpha, beta_l, beta_r, mean = aggd(product.reshape(flat.shape))
        columns += [alpha, mean, beta_l, beta_r]
    return torch.stack(columns, dim=1)


def _normalised(planes: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """MSCN coefficients: (I - mu) / (sigma + 1) with a 7x7 Gaussian and edge-replicated borders."""
    pad = window.shape[-1] // 2
    kernel = window[None, None]
    mu = F.conv2d(F.pad(planes, (pad,) * 4, mode="replicate"), kernel)
    second = F.conv2d(F.pad(planes * planes, (pad,) * 4, mode="replicate"), kernel)
    sigma = (second - mu * mu).abs().sqrt()
    return (planes - mu) / (sigma + 1)


def _blocks(planes: torch.Tensor, size: int) -> torch.Tensor:
    """[B,1,H,W] -> [B, n_blocks, size, size], blocks ordered column by column (as niqe.m)."""
    b, _, h, w = planes.shape
    tiles = planes.reshape(b, h // size, size, w // size, size).permute(0, 3, 1, 2, 4)
    return tiles.reshape(b, -1, size, size)


def niqe_features(planes: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """[B, n_blocks, 36] features of [B,1,H,W] Y planes already cut to whole 96x96 blocks."""
    per_scale = []
    for scale in (1, 2):
        normalised = _normalised(planes, window)
        blocks = _blocks(normalised, BLOCK // scale)
        b, n = blocks.shape[:2]
        per_scale.append(block_features(blocks.reshape(b * n, *blocks.shape[2:])).reshape(b, n, -1))
        if scale == 1:
            planes = imresize(planes / 255.0, 0.5) * 255.0
    return torch.cat(per_scale, dim=2)


def niqe_distance(features: torch.Tensor, mu_pris: torch.Tensor, cov_pris: torch.Tensor) -> torch.Tensor:
    """NIQE of each image from its [n_blocks, 36] features: Mahalanobis-like distance of the two MVG models."""
    scores = []
    for feats in features:
        mu = torch.nanmean(feats, dim=0)
        complete = feats[~torch.isnan(feats).any(dim=1)]
        cov = torch.cov(complete.T)
        gap = (mu_pris - mu)[None, :]
        inverse = torch.linalg.pinv((cov_pris + cov) / 2)
        scores.append((gap @ inverse @ gap.T).sqrt().reshape(()))
    return torch.stack(scores)
