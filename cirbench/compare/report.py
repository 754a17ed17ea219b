"""`cirbench report`: a static folder (index.html + PNGs) with the leaderboard, plots and side-by-side crops.

One section per dataset; blind and oracle methods in separate tables; no scripts or external assets.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cirbench.compare import figures
from cirbench.compare.leaderboard import IDENTITY, MODES, Leaderboard, build_leaderboard
from cirbench.compare.tables import number
from cirbench.dataset.reader import BuiltDataset
from cirbench.errors import CirbenchError
from cirbench.evaluation.protocols import get_protocol
from cirbench.fileio import write_text_atomic


class ReportError(CirbenchError):
    """Nothing to report (no evaluated run) or the output folder cannot be written."""


@dataclass
class ReportOutcome:
    index: Path
    plots: list[Path]
    crops: list[Path]


def _directions(profile: str) -> dict[str, bool]:
    """result name -> higher is better, from the profile's metric infos (BD-rate: lower is better)."""
    from cirbench.metrics import METRICS
    from cirbench.metrics.profiles import get_profile

    return {spec.result_name: METRICS.get(spec.metric).info.higher_better for spec in get_profile(profile).metrics}


def _cell(row: pd.Series, column: str, bold: bool) -> str:
    value = row[column]
    text = html.escape(number(value)) if isinstance(value, float | int) else html.escape(str(value))
    delta, low, high = (row.get(f"{column}/{s}") for s in ("delta", "low", "high"))
    extra = ""
    if row["method"] != IDENTITY and isinstance(delta, float) and not math.isnan(delta):
        extra += f"<span class='d'>{html.escape(number(delta, signed=True))}</span>"
    if isinstance(low, float) and not math.isnan(low):
        extra += f"<span class='ci'>[{number(low)}, {number(high)}]</span>"
    return f"<td class='num{' best' if bold else ''}'>{text}{extra}</td>"


def _best(table: pd.DataFrame, column: str, directions: dict[str, bool]) -> float | None:
    metric = column.rsplit("/", 1)[-1]
    values = pd.to_numeric(table[column], errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    if len(values) < 2:
        return None
    if " BD-rate/" in column:
        return float(values.min())
    if metric in directions:
        return float(values.max() if directions[metric] else values.min())
    return None


def _html_table(table: pd.DataFrame, columns: list[str], directions: dict[str, bool]) -> str:
    best = {c: _best(table, c, directions) for c in columns}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["method", "tasks", *columns])
    body = []
    for _, row in table.iterrows():
        cells = [f"<td class='method'>{html.escape(str(row['method']))}</td><td>{html.escape(str(row['tasks']))}</td>"]
        cells += [_cell(row, c, best[c] is not None and row[c] == best[c]) for c in columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _pick_combo(board: Leaderboard) -> tuple[str, str]:
    combos = list(dict.fromkeys(zip(board.table["protocol"], board.table["profile"], strict=True)))
    if not combos:
        why = f" ({'; '.join(board.run_notes)})" if board.run_notes else ""
        raise ReportError(f"no evaluated run to report: run `cirbench evaluate` first{why}")
    return ("full", "cirbench") if ("full", "cirbench") in combos else combos[0]


def _mode_tables(table: pd.DataFrame, columns: list[str], directions: dict[str, bool]) -> str:
    """Blind and oracle methods apart (identity heads both), so an oracle never sits beside blind rows unflagged."""
    parts = []
    for mode in MODES:
        rows = table[(table["mode"] == mode) | (table["method"] == IDENTITY)]
        if (rows["method"] != IDENTITY).any() or mode == "blind":
            note = " (told the task label at inference)" if mode == "oracle" else ""
            parts.append(f"<h4>{mode} methods{note}</h4><div class='scroll'>{_html_table(rows, columns, directions)}</div>")
    return "".join(parts)


def _extremes_html(found: dict[str, pd.DataFrame]) -> str:
    if not found:
        return ""
    parts = ["<h3>Best and worst images per method (PSNR gain over the input)</h3>"]
    for method, frame in found.items():
        rows = "".join(
            f"<tr><td>{r.kind}</td><td>{html.escape(str(r.task))}</td><td>{html.escape(str(r.image))}</td>"
            f"<td class='num'>{number(float(r.psnr))}</td><td class='num'>{number(float(r.gain), signed=True)}</td></tr>"
            for r in frame.itertuples(index=False)
        )
        parts.append(f"<h4>{html.escape(method)}</h4><table><thead><tr><th></th><th>task</th><th>image</th>"
                     f"<th>PSNR</th><th>gain (dB)</th></tr></thead><tbody>{rows}</tbody></table>")  # fmt: skip
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;font-size:13px;margin:8px 0 20px}
th,td{border:1px solid #bbb;padding:4px 8px}th{background:#e8eef7}
td.method{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}td.best{font-weight:bold;background:#dff0d8}
span.d{display:block;color:#555;font-size:11px}span.ci{display:block;color:#888;font-size:10px}
.scroll{overflow-x:auto}img{max-width:100%;margin:6px 0;border:1px solid #ddd}
"""


def _section(ds: BuiltDataset, board: Leaderboard, table: pd.DataFrame, means: pd.DataFrame, profile: str,
             protocol: str, out: Path) -> tuple[str, list[Path], list[Path]]:  # fmt: skip
    directions = _directions(profile)
    methods = list(table["method"])
    plot_files = figures.make_plots(ds, board, table, means, out / "plots" / ds.name)
    problems: list[str] = []
    crop_files = figures.crop_figures(ds, board, methods, protocol, profile, out / "crops" / ds.name, problems)
    problem_html = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    summary, full = ([c for c in board.value_columns(short) if c in table.columns and table[c].notna().any()]
                     for short in (True, False))  # this profile's columns only  # fmt: skip
    plot_html = "".join(f"<img src='plots/{ds.name}/{p.name}' alt='{html.escape(p.stem)}'>" for p in plot_files)
    crop_html = "".join(f"<img src='crops/{ds.name}/{p.name}' alt='{html.escape(p.stem)}'>" for p in crop_files)
    body = f"""<h2 id="{html.escape(ds.name)}">{html.escape(ds.name)}</h2>
<p>{len(ds.images)} images, {len(ds.tasks)} tasks. Each cell: the mean, below it the difference to <code>{IDENTITY}</code>
(the codec output) and the 95 % interval. Best value per column in bold.</p>
<h3>Per-codec means, overall means and BD-rate</h3><div id="leaderboard">{_mode_tables(table, summary, directions)}</div>
<h3>Every task</h3>{_mode_tables(table, full, directions)}
<h3>Plots</h3>{plot_html}
<h3>Side by side (HR | LQ | methods; crop PSNR under each)</h3>{crop_html}{f"<ul>{problem_html}</ul>" if problems else ""}
{_extremes_html(figures.extremes(board, ds.name, methods, protocol, profile))}"""
    return body, plot_files, crop_files


def write_report(
    dataset: str | Path | BuiltDataset | list, out: str | Path, protocol: str | None = None, profile: str | None = None,
    warn=None,
) -> ReportOutcome:
    """Write OUT/index.html with plots/ and crops/ for every run on one or several datasets."""
    items = dataset if isinstance(dataset, list) else [dataset]
    datasets = [d if isinstance(d, BuiltDataset) else BuiltDataset.open(d) for d in items]
    out = Path(out)
    board = build_leaderboard(datasets, protocol, profile, warn=warn)
    protocol, profile = _pick_combo(board)
    sections, plot_files, crop_files = [], [], []
    for ds in datasets:
        selected = (board.table["dataset"] == ds.name) & (board.table["protocol"] == protocol) & (board.table["profile"] == profile)
        table = board.table[selected].reset_index(drop=True)
        if table.empty:
            continue
        cells = board.task_means
        means = cells[(cells["dataset"] == ds.name) & (cells["protocol"] == protocol) & (cells["profile"] == profile)]
        body, plots_of, crops_of = _section(ds, board, table, means, profile, protocol, out)
        sections.append(body)
        plot_files += plots_of
        crop_files += crops_of
    index = out / "index.html"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in board.notes)
    toc = " | ".join(f"<a href='#{html.escape(d.name)}'>{html.escape(d.name)}</a>" for d in datasets)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cirbench report: {html.escape(', '.join(d.name for d in datasets))}</title>
<style>{_STYLE}</style></head><body>
<h1>cirbench report</h1><p>{toc}</p>
<p>Protocol <b>{html.escape(protocol)}</b> ({html.escape(get_protocol(protocol).description)}); metric profile
<b>{html.escape(profile)}</b>. Means are over images, then over tasks.</p><ul>{notes}</ul>
{''.join(sections)}
</body></html>
"""
    write_text_atomic(index, page)
    return ReportOutcome(index, plot_files, crop_files)
