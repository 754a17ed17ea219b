"""The leaderboard as a terminal prints it: per (dataset, protocol, profile), one ranked line per method with its
tasks, N, family means, overall means and the overall Δ with its interval, in at most 120 columns.
"""

from __future__ import annotations

import math

import pandas as pd

from cirbench.compare.cells import IDENTITY, OVERALL
from cirbench.compare.leaderboard import Leaderboard
from cirbench.compare.tables import _images, number

WIDTH = 120


def _sorted(rows: pd.DataFrame, column: str, higher_better: bool) -> pd.DataFrame:
    if column not in rows.columns:
        return rows
    key = pd.to_numeric(rows[column], errors="coerce") * (-1.0 if higher_better else 1.0)
    return rows.assign(_key=key).sort_values("_key", na_position="last", kind="stable").drop(columns="_key")


def _short(value: object) -> str:
    text = number(value)
    return text if text else "-"


def _delta(row: pd.Series, column: str) -> str:
    delta = row.get(f"{column}/delta")
    if row["method"] == IDENTITY or not isinstance(delta, float) or math.isnan(delta):
        return ""
    low, high = row.get(f"{column}/delta_low"), row.get(f"{column}/delta_high")
    if isinstance(low, float) and not math.isnan(low):
        return f"{number(delta, signed=True)} [{number(low, signed=True)}, {number(high, signed=True)}]"
    return number(delta, signed=True)


def _layout(header: list[str], lines: list[list[str]], method_column: int) -> list[str]:
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    spare = WIDTH - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:  # long labels give way first
        widths[method_column] = max(12, widths[method_column] + spare)
    out = []
    for cells in [header, *lines]:
        cells = [c if len(c) <= w else c[: w - 1] + "…" for c, w in zip(cells, widths, strict=True)]
        out.append("  ".join(c.rjust(w) if i > method_column + 2 else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip())  # fmt: skip
    return out


def _arrowed(metric: str, board: Leaderboard) -> str:
    return f"{metric}{'↑' if board.higher_better.get(metric, True) else '↓'}"


def to_terminal(board: Leaderboard, sort: str | None = None) -> str:
    """One block per group: rank, method, mode, tasks, N, each family's mean of the sort metric, the overall
    means and the overall Δ of the sort metric with its interval. Bold/italic marks become * and ~."""
    blocks = []
    for (dataset, protocol, profile), rows in board.groups():
        metrics = [m for m in board.metrics if f"{OVERALL}/{m}" in rows.columns] or board.metrics
        metric = sort if sort in board.metrics else ("psnr" if "psnr" in metrics else metrics[0])
        families = [c for c in board.value_columns(True) if c.endswith(f" mean/{metric}") and c in rows.columns]
        overall = [f"{OVERALL}/{m}" for m in metrics if f"{OVERALL}/{m}" in rows.columns]
        rows = _sorted(rows, f"{OVERALL}/{metric}", board.higher_better.get(metric, True))
        header = ["#", "method", "mode", "tasks", "N", *(c.split(" mean/")[0] for c in families),
                  *(_arrowed(c.split('/')[1], board) for c in overall), f"Δ {metric} [95%]"]  # fmt: skip
        lines = []
        for rank, (_, row) in enumerate(rows.iterrows(), start=1):
            marks = {"best": "*", "tied": "~"}
            values = [_short(row[c]) + marks.get(row.get(f"{c}/best"), "") for c in families + overall]
            lines.append([str(rank), str(row["method"]), str(row["mode"]), str(row.get("tasks", "")),
                          _images(row, board.value_columns(False)), *values, _delta(row, f"{OVERALL}/{metric}")])  # fmt: skip
        title = f"{dataset} · protocol {protocol} · profile {profile} · {metric} per family (sorted by overall {metric})"
        blocks.append("\n".join([title, *_layout(header, lines, 1)]))
    legend = ("* best: its paired 95 % interval against every other method excludes 0; ~ tied with the best\n"
              "↑/↓ after a metric: higher/lower is better\n"
              "Δ: difference to identity, with the interval of the difference; --full: every task; notes: --format md")
    return "\n\n".join(blocks) + ("\n\n" + legend + "\n" if blocks else "no scored run\n")

