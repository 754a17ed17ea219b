"""`cirbench report`: a static folder (index.html + PNGs) with the leaderboard, plots and side-by-side crops.

No scripts or external assets: the page opens from disk and renders the same everywhere.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cirbench.compare import plots
from cirbench.compare.leaderboard import ID_COLUMNS, IDENTITY, Leaderboard, build_leaderboard
from cirbench.dataset.reader import BuiltDataset, read_rgb
from cirbench.errors import CirbenchError
from cirbench.evaluation.protocols import get_protocol, preview_box
from cirbench.evaluation.results import ResultsStore
from cirbench.fileio import write_text_atomic

MAX_CROP_FIGURES = 8


class ReportError(CirbenchError):
    """Nothing to report (no evaluated run) or the output folder cannot be written."""


@dataclass
class ReportOutcome:
    index: Path
    plots: list[Path]
    crops: list[Path]


def _directions(profile: str) -> dict[str, bool]:
    """result name -> higher is better, from the profile's metric infos."""
    from cirbench.metrics import METRICS
    from cirbench.metrics.profiles import get_profile

    return {spec.result_name: METRICS.get(spec.metric).info.higher_better for spec in get_profile(profile).metrics}


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else (f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}")
    return html.escape(str(value))


def _html_table(table: pd.DataFrame, columns: list[str], directions: dict[str, bool]) -> str:
    best: dict[str, float] = {}
    for column in columns:
        metric = column.rsplit("/", 1)[-1]
        values = pd.to_numeric(table[column], errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
        if metric in directions and len(values) > 1:
            best[column] = float(values.max() if directions[metric] else values.min())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["method", *columns])
    body = []
    for _, row in table.iterrows():
        cells = [f"<td class='method'>{html.escape(str(row['method']))}</td>"]
        for column in columns:
            value = row[column]
            bold = column in best and isinstance(value, float) and value == best[column]
            cells.append(f"<td class='num{' best' if bold else ''}'>{_cell(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _pick_combo(board: Leaderboard) -> tuple[str, str]:
    combos = list(dict.fromkeys(zip(board.table["protocol"], board.table["profile"], strict=True)))
    if not combos:
        raise ReportError("no evaluated run to report: run `cirbench evaluate` first")
    return ("full", "cirbench") if ("full", "cirbench") in combos else combos[0]


def _make_plots(ds: BuiltDataset, means: pd.DataFrame, metrics: list[str], out: Path) -> list[Path]:
    families = list(dict.fromkeys(t.family for t in ds.tasks))
    tasks = [t.name for t in ds.tasks]
    written = []
    for metric in metrics:
        written.append(plots.codec_bars(means, metric, families, out / f"codec_bars_{metric}.png"))
        written.append(plots.level_curves(means, metric, families, tasks, out / f"levels_{metric}.png"))
    if "psnr" in metrics:
        perceptual = next((m for m in ("lpips", "dists", "ssim") if m in metrics), None)
        if perceptual is not None:
            written.append(plots.perception_distortion(means, "psnr", perceptual, out / f"{perceptual}_vs_psnr.png"))
    written.append(plots.rate_distortion(ds.manifest, out / "inputs_bpp_vs_psnr.png"))
    return written


def _crop_figures(ds: BuiltDataset, board: Leaderboard, protocol: str, out: Path) -> list[Path]:
    """HR | LQ | each method for the first previewed image of the hardest level of each codec."""
    runs = {label: f for f, r, label in ResultsStore(ds.results_dir()).labelled_runs() if r["protocol"] == protocol}
    methods = [m for m in board.table["method"] if m in runs]
    written: list[Path] = []
    seen_families: set[str] = set()
    for task in ds.tasks:
        if task.family in seen_families or len(written) >= MAX_CROP_FIGURES:
            continue
        previews = sorted((runs[methods[0]].previews_dir / task.folder).glob("*.png")) if methods else []
        if not previews:
            continue
        seen_families.add(task.family)
        stem = previews[0].stem
        hr, lq = read_rgb(ds.hr_path(stem)), read_rgb(ds.lq_path(task, stem))
        region = get_protocol(protocol).box(hr.shape[0], hr.shape[1], stem)
        box = preview_box(region.height, region.width)
        panels = [("HR", box.cut(region.cut(hr))), (f"LQ {task.name}", box.cut(region.cut(lq)))]
        for method in methods:
            preview = runs[method].previews_dir / task.folder / f"{stem}.png"
            if preview.is_file():
                panels.append((method, read_rgb(preview)))
        written.append(plots.side_by_side(panels, f"{ds.name} / {stem} / {task.name}", out / f"crop_{task.folder}_{stem}.png"))
    return written


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;font-size:13px;margin:8px 0 20px}
th,td{border:1px solid #bbb;padding:4px 8px}th{background:#e8eef7}
td.method{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}td.best{font-weight:bold;background:#dff0d8}
.scroll{overflow-x:auto}img{max-width:100%;margin:6px 0;border:1px solid #ddd}
"""


def _page(ds: BuiltDataset, board: Leaderboard, table: pd.DataFrame, protocol: str, profile: str, images) -> str:
    directions = _directions(profile)
    summary = board.value_columns(summary=True)
    full = board.value_columns(summary=False)
    plot_html = "".join(f"<img src='plots/{p.name}' alt='{html.escape(p.stem)}'>" for p in images[0])
    crop_html = "".join(f"<img src='crops/{p.name}' alt='{html.escape(p.stem)}'>" for p in images[1])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cirbench report: {html.escape(ds.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>cirbench report: {html.escape(ds.name)}</h1>
<p>Protocol <b>{html.escape(protocol)}</b> ({html.escape(get_protocol(protocol).description)}); metric profile
<b>{html.escape(profile)}</b>; {len(ds.images)} images, {len(ds.tasks)} tasks. Means are over images, then over
tasks; best value per column in bold. <code>{IDENTITY}</code> is the codec output without restoration.</p>
<h2>Leaderboard: per-codec and overall means</h2><div class="scroll" id="leaderboard">{_html_table(table, summary, directions)}</div>
<h2>Leaderboard: every task</h2><div class="scroll">{_html_table(table, full, directions)}</div>
<h2>Plots</h2>{plot_html}
<h2>Side by side (HR | LQ | methods)</h2>{crop_html}
</body></html>
"""


def write_report(
    dataset: str | Path | BuiltDataset, out: str | Path, protocol: str | None = None, profile: str | None = None, warn=None
) -> ReportOutcome:
    """Write OUT/index.html with plots/ and crops/ for the latest runs on ``dataset``."""
    ds = dataset if isinstance(dataset, BuiltDataset) else BuiltDataset.open(dataset)
    out = Path(out)
    board = build_leaderboard([ds], protocol, profile, warn=warn)
    protocol, profile = _pick_combo(board)
    selected = (board.table["protocol"] == protocol) & (board.table["profile"] == profile)
    table = board.table[selected].reset_index(drop=True)
    means = board.task_means[(board.task_means["protocol"] == protocol) & (board.task_means["profile"] == profile)]
    means = means.drop(columns=[c for c in ID_COLUMNS if c != "method"])
    plot_files = _make_plots(ds, means, board.metrics, out / "plots")
    crop_files = _crop_figures(ds, Leaderboard(table, board.scores, means, board.metrics), protocol, out / "crops")
    index = out / "index.html"
    write_text_atomic(index, _page(ds, board, table, protocol, profile, (plot_files, crop_files)))
    return ReportOutcome(index, plot_files, crop_files)
