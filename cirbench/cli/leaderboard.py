"""``cirbench leaderboard`` and ``cirbench compare``: the wide table of every run, and paired method differences.

Prints Markdown, CSV or JSON; --csv writes the CSV table, --long the per-image scores of every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cirbench.cli import app, console, err_console
from cirbench.errors import ConfigError
from cirbench.fileio import write_text_atomic


def _warn(message: str) -> None:
    err_console.print(f"[yellow]note:[/] {message}", highlight=False, soft_wrap=True)


def _bootstrap(resamples: int, seed: int):
    from cirbench.compare.statistics import BootstrapSettings

    return BootstrapSettings(resamples=resamples, seed=seed)


def _check_mode(mode: str | None) -> None:
    from cirbench.compare.leaderboard import MODES

    if mode is not None and mode not in MODES:
        raise typer.BadParameter(f"must be one of {', '.join(MODES)}", param_hint="--mode")


@app.command("leaderboard")
def leaderboard_command(
    datasets: Annotated[list[Path], typer.Argument(help="Built dataset folders (OUT/<name>), one test set each")],
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the table as CSV to this file")] = None,
    long: Annotated[Path | None, typer.Option("--long", help="Also write per-image scores (long CSV) to this file")] = None,
    output_format: Annotated[str, typer.Option("--format", help="Printed format: md, csv or json")] = "md",
    protocol: Annotated[str | None, typer.Option("--protocol", help="Only runs of this protocol")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Only runs of this metric profile")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="Only blind or only oracle methods (identity always)")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Print only per-codec means, BD-rates and the overall mean")] = False,
    no_identity: Annotated[bool, typer.Option("--no-identity", help="Do not evaluate a missing identity row")] = False,
    resamples: Annotated[int, typer.Option("--resamples", min=10, help="Bootstrap resamples for the intervals")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed")] = 0,
) -> None:
    """One row per run: a column per task x metric, per-codec means, BD-rate and overall mean, with intervals."""
    from cirbench.compare.leaderboard import build_leaderboard
    from cirbench.compare.tables import FORMATTERS, long_csv, to_csv
    from cirbench.dataset.reader import BuiltDataset

    if output_format not in FORMATTERS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATTERS)}, got '{output_format}'")
    _check_mode(mode)
    board = build_leaderboard(
        [BuiltDataset.open(d) for d in datasets], protocol, profile, ensure_identity=not no_identity, warn=_warn,
        mode=mode, bootstrap=_bootstrap(resamples, seed),
    )  # fmt: skip
    if csv is not None:
        write_text_atomic(csv, to_csv(board))
    if long is not None:
        write_text_atomic(long, long_csv(board))
    typer.echo(FORMATTERS[output_format](board, summary), nl=False)
    if csv is not None or long is not None:
        written = ", ".join(str(p) for p in (csv, long) if p is not None)
        err_console.print(f"wrote {written}", highlight=False)


@app.command("compare")
def compare_command(
    method_a: Annotated[str, typer.Argument(metavar="A", help="Method label as the leaderboard shows it")],
    method_b: Annotated[str, typer.Argument(metavar="B", help="Method label to compare against (e.g. identity)")],
    datasets: Annotated[list[Path], typer.Argument(help="Built dataset folders")],
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Only these metrics (repeatable)")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the differences as CSV")] = None,
    resamples: Annotated[int, typer.Option("--resamples", min=10, help="Bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed")] = 0,
) -> None:
    """Per task: A - B over the images both have, its paired-bootstrap 95 % interval and a Wilcoxon p-value."""
    import pandas as pd

    from cirbench.compare.statistics import compare_methods
    from cirbench.compare.tables import compare_markdown
    from cirbench.dataset.reader import BuiltDataset
    from cirbench.evaluation.results import ResultsStore

    scores = pd.concat([ResultsStore(BuiltDataset.open(d).results_dir()).all_scores() for d in datasets])
    known = sorted(set(scores["method"]))
    for name in (method_a, method_b):
        if name not in known:
            raise ConfigError(f"no run labelled '{name}' (runs: {', '.join(known) or 'none'})")
    if metric:
        scores = scores[scores["metric"].isin(metric)]
    frame = compare_methods(scores, method_a, method_b, _bootstrap(resamples, seed))
    if frame.empty:
        raise ConfigError(f"'{method_a}' and '{method_b}' share no scored image")
    typer.echo(compare_markdown(frame, method_a, method_b), nl=False)
    significant = int(frame["significant"].sum())
    console.print(f"{significant} of {len(frame)} (task, metric) differences are significant at 95 %", highlight=False)
    if csv is not None:
        write_text_atomic(csv, frame.to_csv(index=False))
