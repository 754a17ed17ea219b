"""``cirbench report``: write the static HTML report (leaderboard, plots, side-by-side crops) of one or more datasets.

Thin layer over cirbench.compare.report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cirbench.cli import app, console, err_console


@app.command("report")
def report_command(
    datasets: Annotated[list[Path], typer.Argument(help="Built dataset folders (OUT/<name>) with evaluated runs")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write index.html, plots/ and crops/ into")],
    protocol: Annotated[str | None, typer.Option("--protocol", help="Runs of this protocol (default: full)")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Runs of this metric profile (default: cirbench)")] = None,
) -> None:
    """Static report: leaderboard table, per-codec bars, per-level curves, rate/perception plots, crops."""
    from cirbench.compare.report import write_report

    def warn(message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    outcome = write_report(list(datasets), out, protocol, profile, warn=warn)
    console.print(
        f"report: {len(outcome.plots)} plots, {len(outcome.crops)} side-by-side crops -> {outcome.index}",
        highlight=False,
    )
