"""Set means of per-image scores by one stated convention, the same in score, evaluate and the leaderboard.

An identical pair has PSNR = +inf: it stays inf per image, and enters a mean as INF_CAP_DB (100 dB), counted.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

INF_CAP_DB = 100.0  # a set mean counts an infinite PSNR (identical pair) as 100 dB; n_inf says how many
CONVENTION = f"means over images; an infinite per-image value (identical pair) counts as {INF_CAP_DB:g} dB"


def capped(values: Iterable[float] | pd.Series | np.ndarray) -> np.ndarray:
    """float64 values with +inf replaced by INF_CAP_DB (no finite value is changed)."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isposinf(array), INF_CAP_DB, array)


def set_mean(values: Iterable[float] | pd.Series | np.ndarray) -> float:
    """Mean of per-image values under the convention (NaN for no values)."""
    array = capped(values)
    return float(array.mean()) if array.size else float("nan")


def count_inf(values: Iterable[float] | pd.Series | np.ndarray) -> int:
    return int(np.isposinf(np.asarray(values, dtype=np.float64)).sum())


def grouped_mean(frame: pd.DataFrame, by: list[str], column: str = "value") -> pd.Series:
    """Per-group set means of ``column`` under the convention."""
    return frame.assign(**{column: capped(frame[column])}).groupby(by, sort=False)[column].mean()
