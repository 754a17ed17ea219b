"""``cirbench runs``: list a dataset's evaluation runs, show one record, delete runs, prune failed and broken ones.

Thin layer over cirbench.evaluation.runs; deleting asks first unless --yes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cirbench.cli import app, console, err_console

ACTIONS = ("show", "rm", "prune")
USAGE = "DATASET | show RUN | rm RUN... | prune DATASET"


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


def _options(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(options.items())) or "-"


def _print_table(dataset: Path, summaries) -> None:
    table = Table(title=f"runs of {dataset} ({len(summaries)}; folders in results/runs/)", title_justify="left")
    for column in ("run", "model", "options", "mode", "protocol", "profile", "tasks", "pairs", "status", "result",
                   "created", "size"):  # fmt: skip
        table.add_column(column, justify="right" if column in ("tasks", "pairs", "size") else "left")
    for s in summaries:
        colour = {"complete": "green", "partial": "yellow", "running": "cyan"}.get(s.status, "red")
        result = "yes" if s.is_result else f"no: {s.not_a_result or 'not a result'}"
        table.add_row(s.label, s.model or "?", _options(s.options), s.mode or "?", s.protocol or "?", s.profile or "?",
                      f"{s.tasks_done}/{s.tasks_total}", str(s.pairs), f"[{colour}]{s.status}[/]", result,
                      s.created[:19] or "?", _size(s.size_bytes))  # fmt: skip
    wide = console if console.is_terminal else Console(file=sys.stdout, width=220)  # a pipe gets every column whole
    wide.print(table)
    for s in summaries:
        if s.reason:
            console.print(f"{s.path.name}: {s.status}: {s.reason}", highlight=False, soft_wrap=True)


def _confirm(paths: list[Path], yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise typer.BadParameter("refusing to delete without a terminal to ask; add --yes", param_hint="--yes")
    for path in paths:
        console.print(f"  {path}", highlight=False)
    return typer.confirm(f"delete these {len(paths)} run folder(s)?", default=False)


def _one(args: list[str], action: str) -> str:
    if len(args) != 1:
        raise typer.BadParameter(f"`runs {action}` takes exactly one {'RUN' if action == 'show' else 'DATASET'}",
                                 param_hint=USAGE)  # fmt: skip
    return args[0]


@app.command("runs")
def runs_command(
    args: Annotated[list[str], typer.Argument(metavar=USAGE, help="A dataset to list, or an action and its folders")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking (rm, prune)")] = False,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List the runs of DATASET (status, tasks, pairs, whether a result); show, rm or prune runs."""
    from cirbench.evaluation import runs

    if output_format not in ("table", "json"):
        raise typer.BadParameter("must be table or json", param_hint="--format")
    action, rest = (args[0], args[1:]) if args[0] in ACTIONS else ("list", args)
    if action == "show":
        typer.echo(json.dumps(runs.show_run(_one(rest, action)), indent=2, sort_keys=True, default=str))
    elif action == "rm":
        if not rest:
            raise typer.BadParameter("`runs rm` takes one or more RUN folders", param_hint=USAGE)
        folders = [runs.run_folder(p).path for p in rest]
        if _confirm(folders, yes):
            removed = runs.remove_runs(folders)
            err_console.print(f"deleted {len(removed)} run folder(s)", highlight=False)
    elif action == "prune":
        doomed = runs.prunable(_one(rest, action))
        if not doomed:
            err_console.print("nothing to prune (no failed, empty or unreadable run)", highlight=False)
        elif _confirm([s.path for s in doomed], yes):
            runs.remove_runs([s.path for s in doomed])
            err_console.print(f"pruned {len(doomed)} run folder(s): "
                              + ", ".join(f"{s.path.name} ({s.status})" for s in doomed), highlight=False)  # fmt: skip
    else:
        dataset = Path(_one(rest, "list"))
        summaries = runs.list_runs(dataset)
        if output_format == "json":
            typer.echo(json.dumps([s.as_record() for s in summaries], indent=2, default=str))
        else:
            _print_table(dataset, summaries)
