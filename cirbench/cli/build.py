"""``cirbench build``, ``cirbench info`` and ``cirbench verify-source``: the dataset side of the CLI.

Draws the builder's progress with rich and turns its report into a summary and an exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cirbench.build.sources import DEFAULT_MAX_PIXELS, verify_source
from cirbench.cli import EXIT_ERRORS, app, console, err_console, scheduler_option, task_names

if TYPE_CHECKING:
    from cirbench.build.builder import BuildReport


class RichBuildProgress:
    """BuildProgress drawn as a rich progress bar with ETA; error lines are printed above the bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task_id: int | None = None

    def start(self, stage: str, total: int) -> None:
        if self.task_id is not None:
            self.progress.remove_task(self.task_id)
        self.task_id = self.progress.add_task(stage, total=total)

    def advance(self, amount: int = 1) -> None:
        if self.task_id is not None:
            self.progress.advance(self.task_id, amount)

    def error(self, line: str) -> None:
        self.progress.console.print(f"[red]failed:[/] {line}", highlight=False, soft_wrap=True)


def _print_report(report: BuildReport) -> None:
    if report.unavailable:
        missing_weights = [t for t, reason in report.unavailable.items() if "weights" in reason]
        others = {t: r for t, r in report.unavailable.items() if t not in missing_weights}
        if missing_weights:
            console.print(
                f"[yellow]unavailable:[/] {len(missing_weights)} learned task(s) ({', '.join(missing_weights)}) need "
                "weight files that are not in the cache: `cirbench weights list` names them and how to get them",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
        for task, reason in others.items():
            console.print(f"[yellow]unavailable:[/] {task}: {reason}", highlight=False, soft_wrap=True)
    if report.dry_run:
        console.print(
            f"dry run: {report.sources} sources; would code {report.would_build} (image, task) entries; "
            f"{report.up_to_date} up to date; {len(report.unavailable)} tasks unavailable"
        )
        return
    console.print(
        f"[bold]{report.dataset}[/]: {report.sources} sources, {report.built} entries coded, "
        f"{report.up_to_date} up to date, {len(report.failures)} failed, {len(report.unavailable)} tasks unavailable "
        f"({report.seconds:.1f} s) -> {report.dataset_dir}"
    )
    if report.skipped_entries:
        console.print(
            f"[yellow]skipped {len(report.skipped_entries)} folder entries[/] (listed in build.json): "
            + "; ".join(report.skipped_entries[:5]) + (" ..." if len(report.skipped_entries) > 5 else ""),
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    if report.failures:
        err_console.print(f"[bold red]{len(report.failures)} failure(s):[/]")
        for line in report.failures:
            err_console.print(f"  {line}", highlight=False, soft_wrap=True)


@app.command()
def build(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="[SOURCE] OUT",
            help="Folder of source images (omit it to use the embedded samples), then the output root: "
            "the dataset goes to OUT/<name>",
        ),
    ],
    task_set: Annotated[str, typer.Option("--task-set", help="Task set: moe-diffir-21, unseen, or a TOML file")] = "moe-diffir-21",
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Build only these task names (repeatable or comma-separated)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name (default: source folder name)")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel worker processes")] = 1,
    keep_bitstreams: Annotated[bool, typer.Option("--keep-bitstreams", help="Also keep every bitstream")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild everything, ignoring the manifest")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be built; write nothing")] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed entry")] = False,
    max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Reject larger sources (decompression bombs)")] = DEFAULT_MAX_PIXELS,
    scheduler: Annotated[str | None, typer.Option("--scheduler", callback=scheduler_option, help="Dask scheduler address (shared filesystem)")] = None,
) -> None:
    """Build a CIR dataset: HR/ plus one folder per task (MoE-DiffIR layout) and manifest.parquet."""
    from cirbench.build.builder import BuildOptions, build_dataset

    if len(paths) not in (1, 2):
        raise typer.BadParameter("give [SOURCE] OUT: one or two paths", param_hint="[SOURCE] OUT")
    source, out = (None, paths[0]) if len(paths) == 1 else (paths[0], paths[1])
    names = list(task_names(tasks)) or None
    if name is not None:
        from cirbench.build.planning import check_dataset_name
        from cirbench.errors import ConfigError

        try:
            check_dataset_name(name)
        except ConfigError as exc:
            raise typer.BadParameter(str(exc), param_hint="--name") from None
    options = BuildOptions(
        out=out, source=source, taskset=task_set, name=name, tasks=names, jobs=jobs, keep_bitstreams=keep_bitstreams,
        force=force, dry_run=dry_run, fail_fast=fail_fast, max_pixels=max_pixels, scheduler=scheduler,
    )  # fmt: skip
    columns = (
        TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        report = build_dataset(options, RichBuildProgress(progress))
    _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_ERRORS)


@app.command()
def info(out: Annotated[Path, typer.Argument(help="A built dataset (OUT/<name>) or an output root")]) -> None:
    """Per task: images, mean bpp and mean PSNR of each built dataset."""
    from cirbench.dataset.summary import summarise_dataset

    for summary in summarise_dataset(out):
        table = Table(title=f"{summary.name}  ({summary.images} images, {summary.path})")
        for column in ("task", "id", "folder", "codec", "images", "mean bpp", "mean PSNR (dB)"):
            table.add_column(column, justify="right" if column.startswith(("mean", "images", "id")) else "left")
        for row in summary.rows:
            table.add_row(
                row.task, "" if row.task_id is None else str(row.task_id), row.folder, row.codec,
                str(row.images), f"{row.mean_bpp:.4f}", f"{row.mean_psnr:.2f}",
            )  # fmt: skip
        console.print(table)


@app.command("verify-source")
def verify_source_command(
    folder: Annotated[Path, typer.Argument(help="Folder holding a canonical test set")],
    set_name: Annotated[str, typer.Option("--set", help="kodak, live1, classic5, cbsd68 or bsds500-test")],
) -> None:
    """Compare a folder with a canonical source set's sha256 list: missing, extra, different files."""
    check = verify_source(folder, set_name)
    console.print(f"{check.set_name}: {len(check.matched)} files match")
    for label, names in (("missing", check.missing), ("extra", check.extra), ("different", check.different)):
        for item in names:
            console.print(f"[red]{label}:[/] {item}", highlight=False)
    for present, canonical in check.renamed.items():
        console.print(f"[yellow]renamed:[/] {present} has the content of {canonical}", highlight=False)
    if not check.ok:
        raise typer.Exit(EXIT_ERRORS)
