"""Bjøntegaard delta rate: the bits a restoration saves at equal PSNR, per codec family, against its input.

Piecewise-cubic (PCHIP) interpolation of log10(rate) over PSNR, integrated exactly over the overlapping PSNR range,
as CompressAI's and the video community's tools do. Negative values are savings. With three levels per family the
curve rests on three points: the figure is indicative, and the tables say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BDRate:
    percent: float  # (10**mean log-rate difference - 1) * 100; NaN when the PSNR ranges do not overlap
    points: int  # levels on the shorter curve
    overlap_db: tuple[float, float]
    note: str = ""


def _curve(rates: Sequence[float], psnrs: Sequence[float]):
    from scipy.interpolate import PchipInterpolator

    order = np.argsort(np.asarray(psnrs, dtype=np.float64))
    x = np.asarray(psnrs, dtype=np.float64)[order]
    y = np.log10(np.asarray(rates, dtype=np.float64))[order]
    if np.any(np.diff(x) <= 0):
        return None, x
    return PchipInterpolator(x, y), x


def bd_rate(anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float],
            test_psnr: Sequence[float]) -> BDRate:  # fmt: skip
    """BD-rate of the test curve against the anchor curve (each at least 2 points, PSNR in dB, rate > 0)."""
    points = min(len(anchor_rate), len(test_rate))
    nan = float("nan")
    if points < 2 or min(list(anchor_rate) + list(test_rate)) <= 0:
        return BDRate(nan, points, (nan, nan), "needs >= 2 levels with positive rates on each curve")
    anchor, xa = _curve(anchor_rate, anchor_psnr)
    test, xt = _curve(test_rate, test_psnr)
    if anchor is None or test is None:
        return BDRate(nan, points, (nan, nan), "PSNR does not rise strictly with the level on one curve")
    low, high = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if not high > low:
        return BDRate(nan, points, (float(low), float(high)), "the PSNR ranges of the two curves do not overlap")
    difference = (test.integrate(low, high) - anchor.integrate(low, high)) / (high - low)
    note = "3 levels: indicative" if points == 3 else ""
    return BDRate(float((10.0**difference - 1.0) * 100.0), points, (float(low), float(high)), note)
