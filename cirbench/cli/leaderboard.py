"""``cirbench leaderboard``: the wide table of every method evaluated on one or more datasets.

Prints Markdown, CSV or JSON; --csv writes the CSV table, --long the per-image scores of every method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cirbench.cli import app, err_console
from cirbench.errors import ConfigError
from cirbench.fileio import write_text_atomic


@app.command("leaderboard")
def leaderboard_command(
    datasets: Annotated[list[Path], typer.Argument(help="Built dataset folders (OUT/<name>), one test set each")],
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV to this file")] = None,
    long: Annotated[Path | None, typer.Option("--long", help="Also write per-image scores (long CSV) to this file")] = None,
    output_format: Annotated[str, typer.Option("--format", help="Printed format: md, csv or json")] = "md",
    protocol: Annotated[str | None, typer.Option("--protocol", help="Only runs of this protocol")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Only runs of this metric profile")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Print only per-codec means and the overall mean")] = False,
    no_identity: Annotated[bool, typer.Option("--no-identity", help="Do not evaluate a missing identity row")] = False,
) -> None:
    """One row per method x test set: a column per task x metric, per-codec means and the overall mean."""
    from cirbench.compare.leaderboard import FORMATTERS, build_leaderboard, long_csv, to_csv
    from cirbench.dataset.reader import BuiltDataset

    if output_format not in FORMATTERS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATTERS)}, got '{output_format}'")

    def warn(message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    board = build_leaderboard(
        [BuiltDataset.open(d) for d in datasets], protocol, profile, ensure_identity=not no_identity, warn=warn
    )
    if csv is not None:
        write_text_atomic(csv, to_csv(board))
    if long is not None:
        write_text_atomic(long, long_csv(board))
    typer.echo(FORMATTERS[output_format](board, summary), nl=False)
    if csv is not None or long is not None:
        written = ", ".join(str(p) for p in (csv, long) if p is not None)
        err_console.print(f"wrote {written}", highlight=False)
