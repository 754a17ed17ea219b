"""Uncertainty of the comparison: a seeded paired bootstrap over images and paired method-vs-method tests.

Every method of one test set sees the same image resamples, so intervals of differences are paired. Set-level
metrics (FID, KID: one value per task) have no per-image values and get no interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cirbench.evaluation.results import SET_LEVEL_IMAGE
from cirbench.metrics.aggregate import capped

CELL_KEYS = ["dataset", "protocol", "profile", "mode", "method", "task", "codec", "level", "metric"]
NO_INTERVAL = "set-level metric: no per-image values, so no interval"


@dataclass(frozen=True)
class BootstrapSettings:
    resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    @property
    def quantiles(self) -> tuple[float, float]:
        tail = (1.0 - self.level) / 2.0
        return 100.0 * tail, 100.0 * (1.0 - tail)


def resample_weights(n_images: int, settings: BootstrapSettings, salt: str = "") -> np.ndarray:
    """[R, N] counts: how often each image is drawn in each of R resamples (seeded by seed and ``salt``)."""
    digest = int.from_bytes(salt.encode("utf-8")[:8].ljust(8, b"\0"), "little")
    rng = np.random.default_rng([settings.seed, digest])
    draws = rng.integers(0, n_images, size=(settings.resamples, n_images))
    weights = np.zeros((settings.resamples, n_images), dtype=np.float64)
    np.add.at(weights, (np.arange(settings.resamples)[:, None], draws), 1.0)
    return weights


@dataclass
class CellStatistics:
    """Per-task means with bootstrap intervals; ``resampled[i]`` holds the R resampled means of row i of cells."""

    cells: pd.DataFrame  # CELL_KEYS + value, n, low, high
    resampled: np.ndarray  # [len(cells), R]; NaN rows for set-level metrics
    settings: BootstrapSettings


def _paired_block(block: pd.DataFrame, settings: BootstrapSettings) -> tuple[pd.DataFrame, np.ndarray]:
    """Cells of one test set (dataset, protocol, profile): values [cells, images] times shared weights."""
    images = sorted(set(block["image"]))
    wide = block.pivot_table(index=CELL_KEYS, columns="image", values="value", aggfunc="first").reindex(columns=images)
    values = capped(wide.to_numpy())
    present = ~np.isnan(values)
    weights = resample_weights(len(images), settings, salt=str(block["dataset"].iloc[0]))
    sums = np.nan_to_num(values) @ weights.T
    counts = present.astype(np.float64) @ weights.T
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = np.where(counts > 0, sums / counts, np.nan)
    cells = wide.index.to_frame(index=False)
    cells["value"] = np.nanmean(np.where(present, values, np.nan), axis=1)
    cells["n"] = present.sum(axis=1)
    return cells, resampled


def cell_statistics(scores: pd.DataFrame, settings: BootstrapSettings | None = None) -> CellStatistics:
    """Means and paired-bootstrap intervals of every (method, task, metric) cell of ``scores``."""
    settings = settings or BootstrapSettings()
    frames, arrays = [], []
    per_image = scores[scores["image"] != SET_LEVEL_IMAGE]
    for _, block in per_image.groupby(["dataset", "protocol", "profile"], sort=False):
        cells, resampled = _paired_block(block, settings)
        frames.append(cells)
        arrays.append(resampled)
    set_level = scores[scores["image"] == SET_LEVEL_IMAGE]
    if not set_level.empty:
        cells = set_level.groupby(CELL_KEYS, sort=False)["value"].first().reset_index().assign(n=np.nan)
        frames.append(cells)
        arrays.append(np.full((len(cells), settings.resamples), np.nan))
    if not frames:
        empty = pd.DataFrame(columns=[*CELL_KEYS, "value", "n", "low", "high"])
        return CellStatistics(empty, np.zeros((0, settings.resamples)), settings)
    cells = pd.concat(frames, ignore_index=True)
    resampled = np.concatenate(arrays, axis=0)
    cells["low"], cells["high"] = _interval(resampled, settings)
    return CellStatistics(cells, resampled, settings)


def _interval(resampled: np.ndarray, settings: BootstrapSettings) -> tuple[np.ndarray, np.ndarray]:
    low = np.full(len(resampled), np.nan)
    high = np.full(len(resampled), np.nan)
    finite = ~np.isnan(resampled).all(axis=1) if len(resampled) else np.zeros(0, bool)
    if finite.any():
        low[finite], high[finite] = np.nanpercentile(resampled[finite], settings.quantiles, axis=1)
    return low, high


def aggregate(stats: CellStatistics, rows: pd.Index | np.ndarray) -> tuple[float, float, float]:
    """(mean over the given cells, low, high): the interval of a mean of task means under the shared resamples."""
    index = np.asarray(rows)
    value = float(stats.cells["value"].to_numpy()[index].mean())
    if np.isnan(stats.resampled[index]).all():
        return value, float("nan"), float("nan")
    means = stats.resampled[index].mean(axis=0)
    low, high = np.nanpercentile(means, stats.settings.quantiles)
    return value, float(low), float(high)


def interval_of(resampled: np.ndarray, settings: BootstrapSettings) -> tuple[float, float]:
    """The percentile interval of one vector of resampled statistics (NaN, NaN when there is none)."""
    if resampled is None or not len(resampled) or np.isnan(resampled).all():
        return float("nan"), float("nan")
    low, high = np.nanpercentile(resampled, settings.quantiles)
    return float(low), float(high)


def excludes_zero(low: float, high: float) -> bool:
    return bool(low > 0 or high < 0)


def best_marks(values: dict[object, float], resampled: dict[object, np.ndarray], higher_better: bool,
               settings: BootstrapSettings) -> dict[object, str]:  # fmt: skip
    """Per row: "best" when the leading value's paired interval against every other row excludes 0, else "tied"
    for the leader and every row whose paired interval against it contains 0; rows without resamples (set-level
    metrics, BD-rates) are never marked. The test: the table's own seeded paired bootstrap, at its level."""
    rows = [r for r, v in values.items() if np.isfinite(v) and r in resampled and not np.isnan(resampled[r]).all()]
    if len(rows) < 2:
        return {}
    sign = 1.0 if higher_better else -1.0
    leader = max(rows, key=lambda r: sign * values[r])
    tied = []
    for other in rows:
        if other == leader:
            continue
        low, high = interval_of(sign * (resampled[leader] - resampled[other]), settings)
        if not low > 0:
            tied.append(other)
    return {leader: "best"} if not tied else {r: "tied" for r in [leader, *tied]}


def _wilcoxon(a: pd.Series, b: pd.Series) -> tuple[int, float]:
    """(common images, two-sided Wilcoxon signed-rank p-value of A - B over them)."""
    from scipy.stats import wilcoxon

    common = a.index.intersection(b.index)
    d = capped(a.loc[common]) - capped(b.loc[common])
    if len(d) == 0:
        return 0, float("nan")
    return int(len(d)), 1.0 if not np.any(d) else float(wilcoxon(d, zero_method="wilcox").pvalue)


def compare_methods(scores: pd.DataFrame, a: str, b: str, settings: BootstrapSettings | None = None) -> pd.DataFrame:
    """Per (dataset, protocol, profile, task, metric): A - B with the interval of the difference under the same
    seeded resamples the leaderboard uses (so the two never disagree), significant when it excludes 0; the
    Wilcoxon signed-rank p-value over the common images is reported beside it."""
    settings = settings or BootstrapSettings()
    per_image = scores[(scores["image"] != SET_LEVEL_IMAGE) & scores["method"].isin([a, b])]
    if per_image.empty:
        return pd.DataFrame()
    stats = cell_statistics(per_image, settings)
    cells = stats.cells.reset_index(drop=True)
    where = {tuple(r): i for i, r in enumerate(cells[["dataset", "protocol", "profile", "task", "metric", "method"]]
                                               .itertuples(index=False, name=None))}  # fmt: skip
    rows = []
    for key, block in per_image.groupby(["dataset", "protocol", "profile", "task", "metric"], sort=False):
        i, j = where.get((*key, a)), where.get((*key, b))
        if i is None or j is None:
            continue
        low, high = interval_of(stats.resampled[i] - stats.resampled[j], settings)
        n, p_value = _wilcoxon(block[block["method"] == a].set_index("image")["value"],
                               block[block["method"] == b].set_index("image")["value"])  # fmt: skip
        mean_a, mean_b = float(cells.at[i, "value"]), float(cells.at[j, "value"])
        rows.append({"dataset": key[0], "protocol": key[1], "profile": key[2], "task": key[3], "metric": key[4],
                     "n": n, "mean_a": mean_a, "mean_b": mean_b, "difference": mean_a - mean_b, "low": low,
                     "high": high, "p_value": p_value, "significant": excludes_zero(low, high)})  # fmt: skip
    return pd.DataFrame(rows)
