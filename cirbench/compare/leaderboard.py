"""The leaderboard: one row per method x test set, a column per task x metric, per-codec means, overall mean.

Read from the results stores of one or more built datasets; the `identity` row is evaluated when missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.results import SCORE_COLUMNS, ResultsStore
from cirbench.metrics.aggregate import grouped_mean

ID_COLUMNS = ["dataset", "protocol", "profile", "method"]
OVERALL = "overall"
IDENTITY = "identity"


@dataclass
class Leaderboard:
    """The wide table plus what it was made from."""

    table: pd.DataFrame  # ID_COLUMNS + value columns "<task>/<metric>", "<family> mean/<metric>", "overall/<metric>"
    scores: pd.DataFrame  # long per-image scores (SCORE_COLUMNS + protocol, profile)
    task_means: pd.DataFrame  # ID_COLUMNS + task, codec, level, metric, value (per-task means)
    metrics: list[str]

    def value_columns(self, summary: bool = False) -> list[str]:
        columns = [c for c in self.table.columns if c not in ID_COLUMNS]
        if summary:
            columns = [c for c in columns if c.split("/")[0].endswith(" mean") or c.startswith(f"{OVERALL}/")]
        return columns


def _ensure_identity(ds: BuiltDataset, protocol: str | None, profile: str | None, warn) -> None:
    from cirbench.evaluation.evaluate import EvaluationSettings, evaluate

    store = ResultsStore(ds.results_dir())
    records = [record for _, record in store.runs()]
    combos = {(r["protocol"], r["profile"]) for r in records}
    combos = {c for c in combos if (protocol is None or c[0] == protocol) and (profile is None or c[1] == profile)}
    if not combos:
        combos = {(protocol or "full", profile or "cirbench")}
    wanted = set(ds.task_names())
    for combo in sorted(combos):
        done = [
            r
            for r in records
            if r["method"] == IDENTITY and (r["protocol"], r["profile"]) == combo and wanted <= set(r["tasks_complete"])
        ]
        if not done:
            evaluate(ds, EvaluationSettings(model=IDENTITY, protocol=combo[0], profile=combo[1]), warn=warn)


def _metric_order(scores: pd.DataFrame, profiles: list[str]) -> list[str]:
    """The profiles' result names that have scores, in profile order."""
    from cirbench.metrics.profiles import get_profile

    order: list[str] = []
    for name in profiles:
        order += [spec.result_name for spec in get_profile(name).metrics if spec.result_name not in order]
    present = set(scores["metric"])
    return [m for m in order if m in present]  # companions (kid_std, fid_n_ref) stay in the long scores only


def _complete_mean(rows: pd.DataFrame) -> pd.Series:
    """Mean over tasks per row key; NaN where a method lacks a task that another method of its test set has.

    Means over different task sets are not comparable, so a partial run shows per-task values only.
    """
    groups = [c for c in ID_COLUMNS if c != "method"]
    expected = rows.reset_index().groupby(groups)["task"].nunique()
    means = rows.groupby(level=ID_COLUMNS)["value"].agg(["mean", "count"])
    needed = [expected.get(key[:3], 0) for key in means.index]
    return means["mean"].where(means["count"] >= needed)


def _wide(task_means: pd.DataFrame, tasks: list[str], families: list[str], metrics: list[str]) -> pd.DataFrame:
    keyed = task_means.set_index(ID_COLUMNS)
    columns: dict[str, pd.Series] = {}
    for metric in metrics:
        of_metric = keyed[keyed["metric"] == metric]
        for task in tasks:
            columns[f"{task}/{metric}"] = of_metric.loc[of_metric["task"] == task, "value"]
        for family in families:
            columns[f"{family} mean/{metric}"] = _complete_mean(of_metric[of_metric["codec"] == family])
        columns[f"{OVERALL}/{metric}"] = _complete_mean(of_metric)
    table = pd.DataFrame(columns)
    table = table.dropna(axis=1, how="all").reset_index()
    rank = table["method"].map(lambda m: (0 if m == IDENTITY else 1, m))
    return table.assign(_rank=rank).sort_values(["dataset", "protocol", "profile", "_rank"]).drop(columns="_rank")


def build_leaderboard(
    datasets: list[BuiltDataset],
    protocol: str | None = None,
    profile: str | None = None,
    ensure_identity: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Leaderboard:
    """Collect the latest run of every method on every dataset; means are over images, then over tasks."""
    frames, tasks, families = [], [], []
    for ds in datasets:
        if ensure_identity:
            _ensure_identity(ds, protocol, profile, warn)
        frames.append(ResultsStore(ds.results_dir()).all_scores())
        tasks += [t.name for t in ds.tasks if t.name not in tasks]
        families += [t.family for t in ds.tasks if t.family not in families]
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*SCORE_COLUMNS])
    if protocol is not None:
        scores = scores[scores["protocol"] == protocol]
    if profile is not None:
        scores = scores[scores["profile"] == profile]
    group = [*ID_COLUMNS, "task", "codec", "level", "metric"]
    task_means = grouped_mean(scores, group).reset_index()  # identical pairs: see metrics.aggregate
    metrics = _metric_order(scores, sorted(set(scores["profile"]))) if not scores.empty else []
    table = _wide(task_means, tasks, families, metrics) if not scores.empty else pd.DataFrame(columns=ID_COLUMNS)
    return Leaderboard(table.reset_index(drop=True), scores.reset_index(drop=True), task_means, metrics)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"
    return str(value)


def to_markdown(board: Leaderboard, summary: bool = False) -> str:
    columns = ID_COLUMNS + board.value_columns(summary)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in board.table[columns].itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def to_csv(board: Leaderboard, summary: bool = False) -> str:
    return board.table[ID_COLUMNS + board.value_columns(summary)].to_csv(index=False)


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def to_json(board: Leaderboard, summary: bool = False) -> str:
    table = board.table[ID_COLUMNS + board.value_columns(summary)]
    rows = [
        {k: (_json_value(v)) for k, v in record.items()}
        for record in table.to_dict(orient="records")
    ]
    return json.dumps({"metrics": board.metrics, "rows": rows}, indent=2, default=str) + "\n"


def long_csv(board: Leaderboard) -> str:
    """Per-image scores of every method: dataset, image, task, codec, level, method, metric, value (+ protocol, profile)."""
    return board.scores[[*SCORE_COLUMNS, "protocol", "profile"]].to_csv(index=False)


FORMATTERS = {"md": to_markdown, "csv": to_csv, "json": to_json}
