"""``cirbench leaderboard`` and ``cirbench compare``: the wide table of every run, and paired method differences.

Prints Markdown, CSV or JSON; --csv writes the CSV table, --long the per-image scores of every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cirbench.cli import app, console, err_console, note, split_names
from cirbench.errors import ConfigError
from cirbench.fileio import write_text_atomic


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
    md: Annotated[Path | None, typer.Option("--md", help="Also write the full Markdown tables and notes to this file")] = None,
    long: Annotated[Path | None, typer.Option("--long", help="Also write per-image scores (long CSV) to this file")] = None,
    output_format: Annotated[str, typer.Option("--format", help="Printed format: table (ranked, 120 columns), md, csv or json")] = "table",
    protocol: Annotated[str | None, typer.Option("--protocol", help="Only runs of this protocol (default: every protocol, one table each)")] = None,
    profile: Annotated[str, typer.Option("--profile", help="Only runs of this metric profile")] = "cirbench",
    mode: Annotated[str | None, typer.Option("--mode", help="Only blind or only oracle methods (identity always)")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="md/csv/json: only per-codec means, BD-rates and overall means")] = False,
    full: Annotated[bool, typer.Option("--full", help="table: every task instead of the ranked summary (the md table)")] = False,
    sort: Annotated[str | None, typer.Option("--sort", help="table: rank by this metric's overall mean (default psnr)")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also show runs that are not results (random weights, smoke runs)")] = False,
    metrics: Annotated[list[str] | None, typer.Option("--metrics", help="Only these metrics (comma-separated)")] = None,
    no_identity: Annotated[bool, typer.Option("--no-identity", help="Do not evaluate a missing identity row")] = False,
    resamples: Annotated[int, typer.Option("--resamples", min=10, help="Bootstrap resamples for the intervals")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed")] = 0,
) -> None:
    """One table per (dataset, protocol, profile): every run, ranked, with Δ to identity and its paired interval."""
    from cirbench.compare.leaderboard import build_leaderboard
    from cirbench.compare.tables import FORMATTERS, long_csv, to_csv, to_markdown
    from cirbench.compare.terminal import to_terminal
    from cirbench.dataset.reader import BuiltDataset

    if output_format not in (*FORMATTERS, "table"):
        raise typer.BadParameter(f"must be one of table, {', '.join(FORMATTERS)}", param_hint="--format")
    _check_mode(mode)
    board = build_leaderboard(
        [BuiltDataset.open(d) for d in datasets], protocol, profile, ensure_identity=not no_identity, warn=note,
        mode=mode, bootstrap=_bootstrap(resamples, seed), include_non_results=show_all,
    )  # fmt: skip
    board = only_metrics(board, split_names(metrics))
    for path, text in ((csv, lambda: to_csv(board)), (md, lambda: to_markdown(board)), (long, lambda: long_csv(board))):
        if path is not None:
            write_text_atomic(path, text())
    if output_format == "table" and not full:
        typer.echo(to_terminal(board, sort), nl=False)
        for line in board.run_notes:
            note(line)
    else:
        typer.echo(FORMATTERS["md" if output_format == "table" else output_format](board, summary), nl=False)
    if csv is not None or md is not None or long is not None:
        written = ", ".join(str(p) for p in (csv, md, long) if p is not None)
        err_console.print(f"wrote {written}", highlight=False)


def only_metrics(board, metrics: tuple[str, ...]):
    """The board with only the value columns of ``metrics`` (all when empty); an unknown name is a usage error."""
    if not metrics:
        return board
    unknown = sorted(set(metrics) - set(board.metrics))
    if unknown:
        raise typer.BadParameter(f"no scores for {', '.join(unknown)} (scored: {', '.join(board.metrics)})",
                                 param_hint="--metrics")  # fmt: skip
    from dataclasses import replace

    keep = [c for c in board.table.columns if c.count("/") == 0 or c.split("/")[1] in metrics]
    return replace(board, table=board.table[keep], metrics=[m for m in board.metrics if m in metrics])


@app.command("compare")
def compare_command(
    method_a: Annotated[str, typer.Argument(metavar="A", help="Method label as the leaderboard shows it")],
    method_b: Annotated[str, typer.Argument(metavar="B", help="Method label to compare against (e.g. identity)")],
    datasets: Annotated[list[Path], typer.Argument(help="Built dataset folders")],
    metric: Annotated[list[str] | None, typer.Option("--metrics", "--metric", help="Only these metrics (comma-separated or repeatable)")] = None,
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
    wanted = split_names(metric)
    if wanted:
        scores = scores[scores["metric"].isin(wanted)]
    frame = compare_methods(scores, method_a, method_b, _bootstrap(resamples, seed))
    if frame.empty:
        raise ConfigError(f"'{method_a}' and '{method_b}' share no scored image")
    typer.echo(compare_markdown(frame, method_a, method_b), nl=False)
    significant = int(frame["significant"].sum())
    console.print(f"{significant} of {len(frame)} (task, metric) differences are significant: their 95 % paired "
                  "bootstrap interval (the leaderboard's resamples) excludes 0", highlight=False)  # fmt: skip
    if csv is not None:
        write_text_atomic(csv, frame.to_csv(index=False))
