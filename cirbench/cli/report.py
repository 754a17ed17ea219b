"""``cirbench report``: write the static HTML report (leaderboard, plots, side-by-side crops) of one or more datasets.

Thin layer over cirbench.compare.report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cirbench.cli import app, console, note


@app.command("report")
def report_command(
    datasets: Annotated[list[Path], typer.Argument(help="Built dataset folders (OUT/<name>) with evaluated runs")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write index.html, plots/ and crops/ into")],
    protocol: Annotated[str | None, typer.Option("--protocol", help="Only runs of this protocol (default: every protocol, a section each)")] = None,
    profile: Annotated[str, typer.Option("--profile", help="Only runs of this metric profile")] = "cirbench",
    show_all: Annotated[bool, typer.Option("--all", help="Also show runs that are not results (random weights, smoke runs)")] = False,
) -> None:
    """Static report: leaderboard table, per-codec bars, per-level curves, rate/perception plots, crops."""
    from cirbench.compare.report import write_report

    outcome = write_report(list(datasets), out, protocol, profile, warn=note, include_non_results=show_all)
    console.print(
        f"report: {len(outcome.plots)} plots, {len(outcome.crops)} side-by-side crops -> {outcome.index}",
        highlight=False,
    )
