"""``cirbench score REF_DIR TEST_DIR``: score two image folders paired by file stem with a metric profile.

Writes a per-image CSV and a summary JSON (``--out``); prints the summary table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cirbench.cli import app, console, device_option, err_console


@app.command()
def score(
    ref_dir: Annotated[Path, typer.Argument(help="Folder of reference (ground-truth) images")],
    test_dir: Annotated[Path, typer.Argument(help="Folder of test (decoded or restored) images, same stems")],
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Comma-separated subset, e.g. psnr,ssim,lpips,fid,dists,niqe; pyiqa's as pyiqa:musiq")
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", help="cirbench, basicsr-y, matlab-y, car, pyiqa, compressai, moe-diffir or sspir (= seesr)")
    ] = "cirbench",
    out: Annotated[
        Path | None, typer.Option("--out", help="Per-image CSV; FILE.summary.json is written beside")
    ] = None,
    device: Annotated[str, typer.Option("--device", callback=device_option, help="cpu or cuda")] = "cpu",
) -> None:
    """Score TEST_DIR against REF_DIR pair by pair (file stems must match, sizes too)."""
    from cirbench.metrics.folder_scoring import score_pairs, write_report

    names = [name.strip() for name in metrics.split(",") if name.strip()] if metrics else None
    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("score", total=None)
        report = score_pairs(
            ref_dir,
            test_dir,
            profile=profile,
            metrics=names,
            device=device,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            strict=bool(names),
        )
    for result_name, reason in report.skipped.items():
        err_console.print(f"[yellow]skipped {result_name}:[/] {reason}", highlight=False, soft_wrap=True)
    for message in report.warnings:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    table = Table(title=f"{report.summary['n_pairs']} pairs, profile {report.profile}")
    table.add_column("result")
    table.add_column("value", justify="right")
    for key, value in report.summary.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    console.print(table)
    if out is not None:
        summary_path = write_report(report, out)
        console.print(f"per-image scores: {out}\nsummary: {summary_path}")
