"""The report's page furniture: the header (version, manifest hash, date, what is missing), every table as CSV
and JSON downloads, copies of the run records, and the sortable per-image table linking to its crops.
"""

from __future__ import annotations

import html
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from cirbench.compare.cells import GROUP, IDENTITY
from cirbench.compare.leaderboard import Leaderboard
from cirbench.compare.tables import number
from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.results import SET_LEVEL_IMAGE, ResultsStore
from cirbench.fileio import sha256_file, write_text_atomic

# a table sorts by the column whose header is clicked (numbers as numbers); inline, no external asset
SORT_SCRIPT = """<script>
document.querySelectorAll('table.sortable th').forEach((th, col) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], up = th.dataset.up !== '1';
  th.dataset.up = up ? '1' : '0';
  const key = r => { const t = r.cells[col].dataset.v ?? r.cells[col].textContent; const n = parseFloat(t);
                     return isNaN(n) ? t : n; };
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(r => body.appendChild(r));
}));
</script>"""


def _missing_tasks(ds: BuiltDataset) -> str:
    try:
        build = json.loads((ds.root / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    unavailable = build.get("outcome", {}).get("unavailable_tasks", {}) or {}
    if not unavailable:
        return ""
    kinds = "learned " if all(t.startswith(("PSNR_", "SSIM_", "HIFI")) for t in unavailable) else ""
    return f"{ds.name}: {len(unavailable)} {kinds}tasks not built ({', '.join(unavailable)})"


def _skipped_metrics(datasets: list[BuiltDataset]) -> str:
    skipped: dict[str, str] = {}
    for ds in datasets:
        for _, record in ResultsStore(ds.results_dir()).runs():
            for metric, reason in (record.get("skipped_metrics") or {}).items():
                skipped.setdefault(metric, "weights not installed" if "weights" in str(reason) else str(reason)[:80])
    by_reason: dict[str, list[str]] = {}
    for metric, reason in skipped.items():
        by_reason.setdefault(reason, []).append(metric.upper())
    return "; ".join(f"{', '.join(sorted(names))}: {reason}" for reason, names in by_reason.items())


def header_html(datasets: list[BuiltDataset]) -> str:
    """cirbench version, each dataset's manifest hash, the date, skipped metrics and unbuilt tasks."""
    from cirbench import __version__

    manifests = ", ".join(f"{ds.name} manifest sha256 {sha256_file(ds.root / 'manifest.parquet')[:16]}"
                          for ds in datasets)  # fmt: skip
    missing = [m for m in [_skipped_metrics(datasets), *(_missing_tasks(ds) for ds in datasets)] if m]
    items = [f"cirbench {__version__}", manifests, f"written {datetime.now(UTC).isoformat(timespec='seconds')}"]
    lines = "".join(f"<li>{html.escape(i)}</li>" for i in items)
    lines += "".join(f"<li class='missing'>missing: {html.escape(m)}</li>" for m in missing)
    return f"<ul class='header'>{lines}</ul>"


def downloads(board: Leaderboard, table: pd.DataFrame, slug: str, out: Path) -> str:
    """Write this group's leaderboard (CSV, JSON) and per-image scores (CSV) under tables/; links to them."""
    from cirbench.compare.tables import _json_value

    folder = out / "tables" / slug
    write_text_atomic(folder / "leaderboard.csv", table.to_csv(index=False))
    rows = [{k: _json_value(v) for k, v in r.items()} for r in table.to_dict(orient="records")]
    write_text_atomic(folder / "leaderboard.json", json.dumps({"notes": board.notes, "rows": rows}, indent=1, default=str))
    key = dict(zip(GROUP, table[GROUP].iloc[0], strict=True)) if not table.empty else {}
    scores = board.scores
    for column, value in key.items():
        scores = scores[scores[column] == value]
    write_text_atomic(folder / "per_image.csv", scores.to_csv(index=False))
    links = " | ".join(f"<a href='tables/{slug}/{name}'>{name}</a>" for name in ("leaderboard.csv", "leaderboard.json",
                                                                                  "per_image.csv"))  # fmt: skip
    return f"<p>Download: {links}</p>"


def run_records(ds: BuiltDataset, table: pd.DataFrame, protocol: str, profile: str, out: Path) -> str:
    """Copy the record.json of every run in the table to runs/ and link each by its label."""
    labels = set(table["method"])
    links = []
    for folder, record, label in ResultsStore(ds.results_dir()).labelled_runs():
        if (record["protocol"], record["profile"]) != (protocol, profile) or label not in labels:
            continue
        target = out / "runs" / ds.name / f"{folder.path.name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder.path / "record.json", target)
        links.append(f"<a href='runs/{ds.name}/{target.name}'>{html.escape(label)}</a>")
    return f"<p>Run records: {' | '.join(links)}</p>" if links else ""


def per_image_table(board: Leaderboard, ds: BuiltDataset, protocol: str, profile: str, crops: list[Path],
                    slug: str) -> str:  # fmt: skip
    """image x task rows, one column per method (PSNR, with Δ to identity below), sortable, linked to its crop."""
    scores = board.scores
    psnr = scores[(scores["dataset"] == ds.name) & (scores["protocol"] == protocol) & (scores["profile"] == profile)
                  & (scores["metric"] == "psnr") & (scores["image"] != SET_LEVEL_IMAGE)]  # fmt: skip
    if psnr.empty:
        return ""
    wide = psnr.pivot_table(index=["image", "task"], columns="method", values="value", aggfunc="first")
    methods = [m for m in [IDENTITY, *sorted(c for c in wide.columns if c != IDENTITY)] if m in wide.columns]
    folders = {t.name: t.folder for t in ds.tasks}
    crop_names = {p.name for p in crops}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["image", "task", *methods, "crop"])
    body = []
    for (image, task), row in wide.iterrows():
        cells = [f"<td>{html.escape(str(image))}</td><td>{html.escape(str(task))}</td>"]
        for method in methods:
            value, delta = row.get(method), row.get(method) - row.get(IDENTITY, float("nan"))
            shown = number(float(value)) if pd.notna(value) else ""
            if method != IDENTITY and pd.notna(delta):
                shown += f" <span class='d'>{number(float(delta), signed=True)}</span>"
            cells.append(f"<td class='num' data-v='{value if pd.notna(value) else ''}'>{shown}</td>")
        crop = f"crop_{folders.get(task, task)}_{image}.png"
        link = f"<a href='crops/{slug}/{crop}'>crop</a>" if crop in crop_names else ""
        body.append("<tr>" + "".join(cells) + f"<td>{link}</td></tr>")
    return (f"<details><summary>Per image: PSNR of every method (Δ to identity below), {len(wide)} pairs; click a "
            f"header to sort</summary><div class='scroll'><table class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div></details>")  # fmt: skip
