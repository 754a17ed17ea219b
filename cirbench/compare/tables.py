"""The leaderboard as text: Markdown for papers and terminals, CSV and JSON with every companion column.

Markdown cells read "value (Δ vs identity) [low, high]"; CSV/JSON keep value, low, high, delta and N apart.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from cirbench.compare.leaderboard import ID_COLUMNS, IDENTITY, SUFFIXES, Leaderboard


def number(value: object, signed: bool = False) -> str:
    if not isinstance(value, float | int) or isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value:+.2f}" if abs(value) >= 1 else f"{value:+.4f}"
    return text if signed else text.lstrip("+")


def _marked(text: str, mark: object) -> str:
    return f"**{text}**" if mark == "best" else f"*{text}*" if mark == "tied" else text


def _finite(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(float(value))


def cell_text(row: pd.Series, column: str, with_interval: bool = True) -> str:
    """Identity: ``value [low, high]`` (the interval of its mean); any other row: ``value  Δ [Δlow, Δhigh]`` (the
    interval of the difference to identity)."""
    text = number(row[column])
    if not text:
        return ""
    delta = row.get(f"{column}/delta")
    if row["method"] != IDENTITY and _finite(delta):
        text += f"  {number(delta, signed=True)}"
        low, high = row.get(f"{column}/delta_low"), row.get(f"{column}/delta_high")
        if with_interval and _finite(low):
            text += f" [{number(low, signed=True)}, {number(high, signed=True)}]"
    elif row["method"] == IDENTITY and with_interval and _finite(row.get(f"{column}/low")):
        text += f" [{number(row[f'{column}/low'])}, {number(row[f'{column}/high'])}]"
    return text


def _images(row: pd.Series, columns: list[str]) -> str:
    counts = {int(row[f"{c}/n"]) for c in columns if f"{c}/n" in row and not pd.isna(row[f"{c}/n"])}
    if not counts:
        return ""
    return str(min(counts)) if len(counts) == 1 else f"{min(counts)}-{max(counts)}"


def _shown(board: Leaderboard, rows: pd.DataFrame, summary: bool) -> list[str]:
    return [c for c in board.value_columns(summary) if c in rows.columns and rows[c].notna().any()]


def to_markdown(board: Leaderboard, summary: bool = False) -> str:
    """One table per (dataset, protocol, profile), then the notes."""
    task_columns = board.value_columns(False)
    parts = []
    for (dataset, protocol, profile), rows in board.groups():
        columns = _shown(board, rows, summary)
        header = ["mode", "method", "tasks", "N"] + columns
        lines = [f"### {dataset} · protocol {protocol} · profile {profile}", "",
                 "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]  # fmt: skip
        rates = board.input_bpp.get(dataset, {})
        if not summary and rates:
            lines.append("| | input bpp | | | " + " | ".join(number(rates.get(c.split("/")[0], float("nan")))
                                                         for c in columns) + " |")  # fmt: skip
        for _, row in rows.iterrows():
            cells = [str(row["mode"]), str(row["method"]), str(row.get("tasks", "")), _images(row, task_columns)]
            cells += [_marked(cell_text(row, c), row.get(f"{c}/best")) for c in columns]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    notes = "".join(f"\n- {note}" for note in board.notes)
    return "\n\n".join(parts) + "\n" + ("\n" + notes[1:] + "\n" if notes else "")


def _selected(board: Leaderboard, summary: bool) -> list[str]:
    columns = ID_COLUMNS + ["tasks"]
    for column in board.value_columns(summary):
        columns += [c for c in (column, *(f"{column}/{s}" for s in SUFFIXES)) if c in board.table.columns]
    return columns


def to_csv(board: Leaderboard, summary: bool = False) -> str:
    return board.table[_selected(board, summary)].to_csv(index=False)


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def to_json(board: Leaderboard, summary: bool = False) -> str:
    table = board.table[_selected(board, summary)]
    rows = [{k: _json_value(v) for k, v in record.items()} for record in table.to_dict(orient="records")]
    payload = {"metrics": board.metrics, "input_bpp": board.input_bpp, "notes": board.notes, "rows": rows}
    return json.dumps(payload, indent=2, default=str) + "\n"


def long_csv(board: Leaderboard) -> str:
    """Per-image scores of every method: dataset, image, task, codec, level, method, metric, value, protocol, ..."""
    from cirbench.evaluation.results import SCORE_COLUMNS

    extra = [c for c in ("protocol", "profile", "mode", "run") if c in board.scores.columns]
    return board.scores[[*SCORE_COLUMNS, *extra]].to_csv(index=False)


def compare_markdown(frame: pd.DataFrame, a: str, b: str) -> str:
    """The table of `cirbench compare A B`: per task and metric, A - B with its interval and p-value."""
    header = ["dataset", "task", "metric", "N", a, b, f"{a} - {b}", "95% interval", "p (Wilcoxon)", "significant"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join([
            str(row.dataset), str(row.task), str(row.metric), str(row.n), number(row.mean_a), number(row.mean_b),
            number(row.difference, signed=True), f"[{number(row.low, True)}, {number(row.high, True)}]",
            f"{row.p_value:.3g}", "yes" if row.significant else "no",
        ]) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


FORMATTERS = {"md": to_markdown, "csv": to_csv, "json": to_json}
