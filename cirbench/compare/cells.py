"""The leaderboard's value columns: per-task means, family and overall means, each with its own interval, its
difference to identity with the interval of that difference, and "best"/"tied" marks from the paired test.

Every interval comes from one set of seeded resamples per test set, so a Δ interval here and `compare` agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cirbench.compare.statistics import CellStatistics, best_marks, interval_of

ID_COLUMNS = ["dataset", "protocol", "profile", "mode", "method"]
GROUP = ["dataset", "protocol", "profile"]  # one table each: never a column mixing protocols or profiles
OVERALL = "overall"
IDENTITY = "identity"
# companion columns of every value column "<group>/<metric>": its interval, Δ to identity and the interval of Δ,
# its mark ("best" or "tied") and N images
SUFFIXES = ("low", "high", "delta", "delta_low", "delta_high", "best", "n")


@dataclass
class Columns:
    """Row key (ID_COLUMNS values) -> column -> value, and the resampled statistic behind each value column."""

    rows: dict[tuple, dict[str, object]] = field(default_factory=dict)
    resampled: dict[tuple[tuple, str], np.ndarray] = field(default_factory=dict)


def directions(metrics: list[str], recorded: dict[str, bool] | None = None) -> dict[str, bool]:
    """result name -> higher is better: as the runs recorded it, else from the profiles and the metric registry's
    metadata (a result named after a metric, e.g. ``niqe`` or ``pyiqa:musiq``, takes that metric's direction)."""
    from cirbench.errors import CirbenchError
    from cirbench.metrics import metric_info
    from cirbench.metrics.profiles import PROFILES

    found: dict[str, bool] = {m: v for m, v in (recorded or {}).items() if m in metrics}
    for profile in PROFILES.values():
        for spec in profile.metrics:
            if spec.result_name in found or spec.result_name not in metrics:
                continue
            try:
                found[spec.result_name] = metric_info(spec.metric).higher_better
            except CirbenchError:  # a profile naming a metric that is not installed here
                continue
    for name in metrics:
        if name not in found:
            try:
                found[name] = metric_info(name).higher_better
            except CirbenchError:
                continue
    return {m: found.get(m, True) for m in metrics}


def direction_line(metrics: list[str], higher_better: dict[str, bool]) -> str:
    """'psnr ↑, lpips ↓, niqe ↓ (no reference)': each metric's better direction, no-reference ones named."""
    from cirbench.errors import CirbenchError
    from cirbench.metrics import metric_info

    parts = []
    for name in metrics:
        try:
            alone = metric_info(name).no_reference
        except CirbenchError:
            alone = False
        arrow = "↑" if higher_better.get(name, True) else "↓"
        parts.append(f"{name} {arrow}" + (" (no reference: the restored image alone)" if alone else ""))
    return ", ".join(parts)


def recorded_directions(records: list[dict]) -> dict[str, bool]:
    """result name -> higher_better as the run records of these runs state it (runs made before it was recorded
    say nothing; the registry answers for them)."""
    found: dict[str, bool] = {}
    for record in records:
        for name, entry in (record.get("metrics") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("higher_better"), bool):
                found.setdefault(name, entry["higher_better"])
    return found


class _Filler:
    """Fills one metric's columns; identity's cells are the reference of every Δ."""

    def __init__(self, stats: CellStatistics, out: Columns) -> None:
        self.stats, self.out = stats, out
        cells = stats.cells
        self.values = cells["value"].to_numpy(dtype=np.float64)
        keys = cells[[*GROUP, "task", "metric"]].itertuples(index=False, name=None)
        self.identity = {k: i for i, (k, m) in enumerate(zip(keys, cells["method"], strict=True)) if m == IDENTITY}

    def summary(self, rows: list[int]) -> tuple[float, np.ndarray]:
        return float(self.values[rows].mean()), self.stats.resampled[rows].mean(axis=0)

    def reference(self, key: tuple, rows: list[int]) -> list[int] | None:
        cells = self.stats.cells
        found = [self.identity.get((*key[:3], cells.at[i, "task"], cells.at[i, "metric"])) for i in rows]
        return None if key[4] == IDENTITY or any(j is None for j in found) else found

    def put(self, key: tuple, base: str, rows: list[int]) -> None:
        entry = self.out.rows.setdefault(key, {})
        value, vec = self.summary(rows)
        entry[base] = value
        entry[f"{base}/low"], entry[f"{base}/high"] = interval_of(vec, self.stats.settings)
        self.out.resampled[(key, base)] = vec
        reference = self.reference(key, rows)
        if reference is not None:
            ref_value, ref_vec = self.summary(reference)
            entry[f"{base}/delta"] = value - ref_value
            entry[f"{base}/delta_low"], entry[f"{base}/delta_high"] = interval_of(vec - ref_vec, self.stats.settings)


def value_columns(stats: CellStatistics, families: list[str], metrics: list[str]) -> Columns:
    """Task cells, complete family means and the overall mean of every metric, with intervals and Δ."""
    out = Columns()
    filler = _Filler(stats, out)
    cells = stats.cells
    for metric in metrics:
        of_metric = cells[cells["metric"] == metric]
        expected = of_metric.groupby(["dataset", "codec"])["task"].nunique().to_dict()
        expected_all = of_metric.groupby("dataset")["task"].nunique().to_dict()
        for key, rows in of_metric.groupby(ID_COLUMNS, sort=False).groups.items():
            rows = list(rows)
            for index in rows:
                filler.put(key, f"{cells.at[index, 'task']}/{metric}", [index])
                out.rows[key][f"{cells.at[index, 'task']}/{metric}/n"] = cells.at[index, "n"]
            by_family = cells.loc[rows].groupby("codec").groups
            for family in families:
                members = by_family.get(family)
                if members is not None and len(members) >= expected.get((key[0], family), 0):
                    filler.put(key, f"{family} mean/{metric}", list(members))
            if len(rows) >= expected_all.get(key[0], 0):
                filler.put(key, f"{OVERALL}/{metric}", rows)
    return out


def mark(table: pd.DataFrame, columns: list[str], resampled: dict[tuple[tuple, str], np.ndarray], settings,
         higher_better: dict[str, bool]) -> dict[tuple[int, str], str]:  # fmt: skip
    """(row position, column) -> "best" | "tied" within ``table`` (one group's rows), from the paired test."""
    marks: dict[tuple[int, str], str] = {}
    keys = [tuple(row) for row in table[ID_COLUMNS].itertuples(index=False, name=None)]
    for column in columns:
        metric = column.rsplit("/", 1)[-1]
        if " BD-rate/" in column or metric not in higher_better or column not in table.columns:
            continue
        values = {i: float(v) for i, v in enumerate(pd.to_numeric(table[column], errors="coerce")) if pd.notna(v)}
        vectors = {i: resampled[(keys[i], column)] for i in values if (keys[i], column) in resampled}
        for i, label in best_marks(values, vectors, higher_better[metric], settings).items():
            marks[(i, column)] = label
    return marks


def with_marks(table: pd.DataFrame, resampled: dict, settings, higher_better: dict[str, bool]) -> pd.DataFrame:
    """``table`` with "<column>/best" set within each (dataset, protocol, profile) group."""
    columns = [c for c in table.columns if c.count("/") == 1 and c not in ID_COLUMNS]
    table = table.copy()
    for column in columns:
        table[f"{column}/best"] = ""
    for _, group in table.groupby(GROUP, sort=False):
        positions = list(group.index)
        for (i, column), label in mark(group.reset_index(drop=True), columns, resampled, settings, higher_better).items():
            table.at[positions[i], f"{column}/best"] = label
    return table
