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


@dataclass(frozen=True)
class PairedDifference:
    task: str
    metric: str
    n: int
    mean_a: float
    mean_b: float
    difference: float  # mean over images of (A - B)
    low: float
    high: float
    p_value: float  # Wilcoxon signed-rank, two-sided
    significant: bool  # the interval excludes 0 and p < 1 - level


def paired_difference(a: pd.Series, b: pd.Series, settings: BootstrapSettings, task: str, metric: str) -> PairedDifference:
    """A - B over the images both have (indexed by image): mean, paired-bootstrap interval, Wilcoxon p-value."""
    from scipy.stats import wilcoxon

    common = a.index.intersection(b.index).sort_values()
    values_a, values_b = capped(a.loc[common]), capped(b.loc[common])
    d = values_a - values_b
    if len(d) == 0:
        nan = float("nan")
        return PairedDifference(task, metric, 0, nan, nan, nan, nan, nan, nan, False)
    weights = resample_weights(len(d), settings, salt=task)
    resampled = (weights @ d) / len(d)
    low, high = np.percentile(resampled, settings.quantiles)
    p_value = 1.0 if not np.any(d) else float(wilcoxon(d, zero_method="wilcox").pvalue)
    significant = bool((low > 0 or high < 0) and p_value < 1.0 - settings.level)
    return PairedDifference(
        task, metric, int(len(d)), float(values_a.mean()), float(values_b.mean()),
        float(d.mean()), float(low), float(high), p_value, significant,
    )  # fmt: skip


def compare_methods(scores: pd.DataFrame, a: str, b: str, settings: BootstrapSettings | None = None) -> pd.DataFrame:
    """Per (dataset, protocol, profile, task, metric): the paired difference A - B over their common images."""
    settings = settings or BootstrapSettings()
    per_image = scores[scores["image"] != SET_LEVEL_IMAGE]
    rows = []
    for key, block in per_image.groupby(["dataset", "protocol", "profile", "task", "metric"], sort=False):
        of_a = block[block["method"] == a].set_index("image")["value"]
        of_b = block[block["method"] == b].set_index("image")["value"]
        if of_a.empty or of_b.empty:
            continue
        result = paired_difference(of_a, of_b, settings, task=str(key[3]), metric=str(key[4]))
        rows.append({"dataset": key[0], "protocol": key[1], "profile": key[2], **result.__dict__})
    return pd.DataFrame(rows)
