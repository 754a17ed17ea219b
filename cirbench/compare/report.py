"""`cirbench report`: a static folder (index.html + PNGs) with the leaderboard, plots and side-by-side crops.

One section per (dataset, protocol, profile); blind and oracle methods in separate tables; no external assets.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cirbench.compare import figures, report_parts
from cirbench.compare.cells import direction_line, mark
from cirbench.compare.leaderboard import DEFAULT_PROFILE, IDENTITY, MODES, Leaderboard, build_leaderboard
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


def _cell(row: pd.Series, column: str, mark: str) -> str:
    value = row[column]
    text = html.escape(number(value)) if isinstance(value, float | int) else html.escape(str(value))
    extra = ""
    delta, d_low, d_high = (row.get(f"{column}/{s}") for s in ("delta", "delta_low", "delta_high"))
    if row["method"] != IDENTITY and isinstance(delta, float) and not math.isnan(delta):
        interval = f" [{number(d_low, True)}, {number(d_high, True)}]" if isinstance(d_low, float) and not math.isnan(d_low) else ""
        extra += f"<span class='d'>Δ {html.escape(number(delta, signed=True))}{interval}</span>"
    elif row["method"] == IDENTITY:
        low, high = row.get(f"{column}/low"), row.get(f"{column}/high")
        if isinstance(low, float) and not math.isnan(low):
            extra += f"<span class='ci'>[{number(low)}, {number(high)}]</span>"
    css = {"best": " best", "tied": " tied"}.get(mark, "")
    return f"<td class='num{css}'>{text}{extra}</td>"


def _html_table(board: Leaderboard, rows: pd.DataFrame, columns: list[str]) -> str:
    marks = mark(rows, columns, board.resampled, board.settings, board.higher_better)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["method", "tasks", *columns])
    body = []
    for i, (_, row) in enumerate(rows.iterrows()):
        cells = [f"<td class='method'>{html.escape(str(row['method']))}</td><td>{html.escape(str(row['tasks']))}</td>"]
        cells += [_cell(row, c, marks.get((i, c), "")) for c in columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _mode_tables(board: Leaderboard, table: pd.DataFrame, columns: list[str]) -> str:
    """Blind and oracle methods apart (identity heads both), so an oracle never sits beside blind rows unflagged;
    best/tied are decided within each table."""
    parts = []
    for mode in MODES:
        rows = table[(table["mode"] == mode) | (table["method"] == IDENTITY)].reset_index(drop=True)
        if (rows["method"] != IDENTITY).any() or mode == "blind":
            note = " (told the task label at inference)" if mode == "oracle" else ""
            parts.append(f"<h4>{mode} methods{note}</h4><div class='scroll'>{_html_table(board, rows, columns)}</div>")
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
td.method{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}td.best{font-weight:bold;background:#dff0d8}td.tied{font-style:italic;background:#f3f8ec}
span.d{display:block;color:#555;font-size:11px}span.ci{display:block;color:#888;font-size:10px}
.scroll{overflow-x:auto}ul.header{color:#444}li.missing{color:#a15c00}table.sortable th{cursor:pointer}img{max-width:100%;margin:6px 0;border:1px solid #ddd}
"""


def _section(ds: BuiltDataset, board: Leaderboard, table: pd.DataFrame, means: pd.DataFrame, profile: str,
             protocol: str, out: Path) -> tuple[str, list[Path], list[Path]]:  # fmt: skip
    methods = list(table["method"])
    slug = f"{ds.name}/{protocol}-{profile}"
    plot_files = figures.make_plots(ds, board, table, means, out / "plots" / slug)
    problems: list[str] = []
    crop_files = figures.crop_figures(ds, board, methods, protocol, profile, out / "crops" / slug, problems, table)
    problem_html = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
    summary, full = ([c for c in board.value_columns(short) if c in table.columns and table[c].notna().any()]
                     for short in (True, False))  # this group's columns only  # fmt: skip
    plot_html = "".join(f"<img src='plots/{slug}/{p.name}' alt='{html.escape(p.stem)}'>" for p in plot_files)
    crop_html = "".join(f"<img src='crops/{slug}/{p.name}' alt='{html.escape(p.stem)}'>" for p in crop_files)
    anchor = html.escape(f"{ds.name}-{protocol}-{profile}")
    body = f"""<h2 id="{anchor}">{html.escape(ds.name)} · protocol {html.escape(protocol)} · profile {html.escape(profile)}</h2>
<p>{len(ds.images)} images, {len(ds.tasks)} tasks; protocol <b>{html.escape(protocol)}</b>
({html.escape(get_protocol(protocol).description)}), metric profile <b>{html.escape(profile)}</b>. Identity's cells: its mean
and the 95 % interval of that mean. Every other cell: its mean, below it Δ = the difference to <code>{IDENTITY}</code> (the
codec output) and the 95 % paired interval of that difference. <b>Bold</b>: best (its paired interval against every
other method of the table excludes 0); <i>italic</i>: tied with the best. Better is:
{html.escape(direction_line([m for m in board.metrics if m in set(means["metric"])], board.higher_better))}.</p>
<h3>Per-codec means, overall means and BD-rate</h3><div id="leaderboard">{_mode_tables(board, table, summary)}</div>
<h3>Every task</h3>{_mode_tables(board, table, full)}
<h3>Plots</h3>{plot_html}
{report_parts.downloads(board, table, slug, out)}{report_parts.run_records(ds, table, protocol, profile, out)}
<h3>Side by side (HR | LQ | methods; crop PSNR under each), where {html.escape(figures._leader(table) or "the best method")} gains and loses most</h3>
{crop_html}{f"<ul>{problem_html}</ul>" if problems else ""}
{report_parts.per_image_table(board, ds, protocol, profile, crop_files, slug)}
{_extremes_html(figures.extremes(board, ds.name, methods, protocol, profile))}"""
    return body, plot_files, crop_files


def write_report(
    dataset: str | Path | BuiltDataset | list, out: str | Path, protocol: str | None = None,
    profile: str | None = DEFAULT_PROFILE, warn=None, include_non_results: bool = False,
) -> ReportOutcome:  # fmt: skip
    """Write OUT/index.html with plots/ and crops/: one section per (dataset, protocol, profile) of the runs."""
    items = dataset if isinstance(dataset, list) else [dataset]
    datasets = [d if isinstance(d, BuiltDataset) else BuiltDataset.open(d) for d in items]
    out = Path(out)
    board = build_leaderboard(datasets, protocol, profile, warn=warn, include_non_results=include_non_results)
    if board.table.empty:
        why = f" ({'; '.join(board.run_notes)})" if board.run_notes else ""
        raise ReportError(f"no evaluated run to report: run `cirbench evaluate` first{why}")
    by_name = {d.name: d for d in datasets}
    sections, plot_files, crop_files, toc = [], [], [], []
    for (name, group_protocol, group_profile), table in board.groups():
        cells = board.task_means
        means = cells[(cells["dataset"] == name) & (cells["protocol"] == group_protocol) & (cells["profile"] == group_profile)]
        body, plots_of, crops_of = _section(by_name[name], board, table, means, group_profile, group_protocol, out)
        sections.append(body)
        plot_files += plots_of
        crop_files += crops_of
        anchor = html.escape(f"{name}-{group_protocol}-{group_profile}")
        toc.append(f"<a href='#{anchor}'>{html.escape(f'{name} · {group_protocol} · {group_profile}')}</a>")
    index = out / "index.html"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in board.notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cirbench report: {html.escape(', '.join(d.name for d in datasets))}</title>
<style>{_STYLE}</style></head><body>
<h1>cirbench report</h1>{report_parts.header_html(datasets)}<p>{' | '.join(toc)}</p>
<p>One section per test set, protocol and metric profile: a table never mixes them. Means are over images, then over
tasks.</p><ul>{notes}</ul>
{''.join(sections)}
{report_parts.SORT_SCRIPT}
</body></html>
"""
    write_text_atomic(index, page)
    return ReportOutcome(index, plot_files, crop_files)
