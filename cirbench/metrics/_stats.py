"""Statistics behind FID and KID: streaming float64 moments, the Frechet distance, polynomial-kernel MMD.

Moments are running sums (shifted by the first batch's mean for precision), so memory is flat in N.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg
import torch

from cirbench.metrics._base import MetricError

RECOMMENDED_N = 2048


class SmallSampleWarning(UserWarning):
    """FID on fewer samples than feature dimensions: rank-deficient covariance, biased and unstable."""


class RunningMoments:
    """Mean and unbiased covariance of feature rows, accumulated batch by batch in float64."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.shift: torch.Tensor | None = None
        self.total: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    def update(self, features: torch.Tensor) -> None:
        rows = features.to(torch.float64)
        if rows.numel() == 0:
            return
        if self.shift is None:
            self.shift = rows.mean(dim=0)
            self.total = torch.zeros_like(self.shift)
            self.outer = torch.zeros(rows.shape[1], rows.shape[1], dtype=torch.float64, device=rows.device)
        centred = rows - self.shift
        self.total += centred.sum(dim=0)
        self.outer += centred.T @ centred
        self.count += rows.shape[0]

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2 or self.total is None or self.outer is None or self.shift is None:
            raise MetricError(f"FID needs at least 2 samples per side, got {self.count}")
        centred_mean = self.total / self.count
        cov = (self.outer - self.count * torch.outer(centred_mean, centred_mean)) / (self.count - 1)
        return (self.shift + centred_mean).cpu().numpy(), cov.cpu().numpy()


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = scipy.linalg.eigh(matrix, driver="evd")
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1-mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2), with Tr((S1 S2)^1/2) from the symmetric S1^1/2 S2 S1^1/2."""
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    root = _psd_sqrt(np.asarray(sigma1, np.float64))
    middle = root @ np.asarray(sigma2, np.float64) @ root
    trace_sqrt = float(
        np.sum(np.sqrt(np.clip(scipy.linalg.eigvalsh((middle + middle.T) / 2, driver="evd"), 0.0, None)))
    )
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def warn_small_sample(metric: str, count: int, hint: str) -> None:
    if count < RECOMMENDED_N:
        warnings.warn(
            f"{metric} on N={count} samples (< {RECOMMENDED_N}): the 2048x2048 covariance is rank-deficient and "
            f"the value is biased and unstable; {hint}",
            SmallSampleWarning,
            stacklevel=3,
        )


def polynomial_mmd(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef: float) -> float:
    """Unbiased MMD^2 with k(a,b) = (gamma a.b + coef)^degree between equal-sized feature sets."""
    m = x.shape[0]
    k_xx = (gamma * (x @ x.T) + coef) ** degree
    k_yy = (gamma * (y @ y.T) + coef) ** degree
    k_xy = (gamma * (x @ y.T) + coef) ** degree
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    subsets: int,
    subset_size: int,
    degree: int,
    gamma: float | None,
    coef: float,
    seed: int,
) -> tuple[float, float, int]:
    """(mean, population std, subset size m) of polynomial MMD^2 over seeded random subsets."""
    m = min(x.shape[0], y.shape[0], subset_size)
    if m < 2:
        raise MetricError(f"KID needs at least 2 samples per side, got {x.shape[0]} and {y.shape[0]}")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        pick_x = torch.randperm(x.shape[0], generator=generator)[:m].to(x.device)
        pick_y = torch.randperm(y.shape[0], generator=generator)[:m].to(y.device)
        values.append(polynomial_mmd(x[pick_x], y[pick_y], degree, gamma, coef))
    scores = np.asarray(values)
    return float(scores.mean()), float(scores.std()), m


__all__ = ["RunningMoments", "SmallSampleWarning", "frechet_distance", "kernel_inception_distance"]
