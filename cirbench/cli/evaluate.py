"""``cirbench evaluate`` and ``cirbench rescore``: score a model (or a run's saved images) on a built dataset.

Thin layer over cirbench.evaluation.evaluate; prints skipped-metric warnings and where the results went.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cirbench.cli import app, console, device_option, note, scheduler_option, split_names, task_names
from cirbench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE strings -> dict; values are read as JSON when they parse (numbers, true/false), else as text."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"model option '{pair}' must look like KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


@app.command("evaluate")
def evaluate_command(
    dataset: Annotated[Path, typer.Argument(help="A built dataset folder (OUT/<name>)")],
    model: Annotated[str, typer.Option("--model", "-m", help="Registry name (identity, tv-chambolle, ...) or module:factory")],
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Weights: .safetensors or tensors-only .pt/.pth")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-O", help="Model option KEY=VALUE (repeatable)")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Only these tasks (repeatable or comma-separated)")] = None,
    device: Annotated[str, typer.Option("--device", callback=device_option, help="cpu, cuda or cuda:N")] = "cpu",
    protocol: Annotated[str, typer.Option("--protocol", help="full (whole image), crop256 (exact MoE-DiffIR centre crop) or resize256 (the MoE-DiffIR release's resampled geometry)")] = "full",
    batch: Annotated[int, typer.Option("--batch", min=1, help="Images per model call (same-size images only)")] = 1,
    tile: Annotated[int | None, typer.Option("--tile", min=0, help="Tiles of T pixels (default: the model's preference; 0: whole image)")] = None,
    overlap: Annotated[int | None, typer.Option("--overlap", min=0, help="Overlap of neighbouring tiles in pixels (default 32, at most T/4)")] = None,
    save_images: Annotated[bool, typer.Option("--save-images", help="Also write restored PNGs into the run folder")] = False,
    profile: Annotated[str, typer.Option("--profile", help="Metric profile: cirbench, basicsr-y, matlab-y, car, pyiqa, compressai, moe-diffir or sspir (= seesr)")] = "cirbench",
    method: Annotated[str | None, typer.Option("--method", help="Leaderboard label (default: the model name, plus @ and 8 hex digits of the checkpoint sha256)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Discard this run's earlier results and start over")] = False,
    metrics: Annotated[list[str] | None, typer.Option("--metrics", help="Only these metrics of the profile (comma-separated)")] = None,
    preview_images: Annotated[int, typer.Option("--preview-images", min=0, help="First N images of each task keep a 128 px preview for the report's crops")] = 8,
    scheduler: Annotated[str | None, typer.Option("--scheduler", callback=scheduler_option, help="Dask scheduler address: workers (one per GPU) restore and score; the dataset on a shared filesystem")] = None,
) -> None:
    """Restore every (image, task) of DATASET with a model and score it against HR (resumable)."""
    from cirbench.evaluation.evaluate import EvaluationSettings, evaluate

    settings = EvaluationSettings(
        model=model, checkpoint=str(checkpoint) if checkpoint else None, model_options=parse_options(option),
        tasks=task_names(tasks), device=device, protocol=protocol, batch=batch, tile=tile,
        overlap=overlap, save_images=save_images, profile=profile, method=method, force=force,
        metrics=split_names(metrics), scheduler=scheduler, preview_images=preview_images,
    )  # fmt: skip
    outcome = _run_with_progress(lambda advance, warn: evaluate(dataset, settings, progress=advance, warn=warn))
    if save_images:
        console.print(f"restored images: {outcome.run_dir / 'images'}/<task folder>/<image>.png", highlight=False, soft_wrap=True)


@app.command("rescore")
def rescore_command(
    run: Annotated[Path, typer.Argument(help="A run folder: OUT/<name>/results/runs/<run> (made with --save-images)")],
    profile: Annotated[str, typer.Option("--profile", help="Metric profile to score the saved images under")] = "cirbench",
    metrics: Annotated[list[str] | None, typer.Option("--metrics", help="Only these metrics (comma-separated)")] = None,
    device: Annotated[str, typer.Option("--device", callback=device_option, help="cpu, cuda or cuda:N (metrics only)")] = "cpu",
) -> None:
    """Score the saved restored images of an earlier run under another profile, without running the model."""
    from cirbench.evaluation.rescore import rescore

    _run_with_progress(lambda advance, warn: rescore(run, profile, split_names(metrics), device, advance, warn),
                       rescored=True)


def _run_with_progress(call, rescored: bool = False):
    """Run an evaluation with a progress bar (shown from the first scored batch on, so an instant error prints
    alone), then print its summary line and per-task means."""
    columns = (
        TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(),
    )  # fmt: skip
    shown: dict = {}

    def advance(done: int, total: int, task: str) -> None:
        if "bar" not in shown:
            shown["progress"] = Progress(*columns, console=console, transient=False)
            shown["progress"].start()
            shown["bar"] = shown["progress"].add_task("evaluate", total=None)
        shown["progress"].update(shown["bar"], completed=done, total=total, description=task)

    try:
        outcome = call(advance, note)
    finally:
        if "progress" in shown:
            shown["progress"].stop()
    record = outcome.record
    timings = record["timings"]
    what = (f"rescored {outcome.evaluated} pairs from saved images (model not run), {outcome.reused} already rescored"
            if rescored else f"{outcome.evaluated} pairs restored, {outcome.reused} reused from an earlier session; "
            f"model {timings['model_s']:.2f} s of {timings['total_s']:.2f} s")  # fmt: skip
    console.print(
        f"[bold]{record['method']}[/] ({record['mode']}, protocol {record['protocol']}, profile {record['profile']}): "
        f"{what} -> {outcome.run_dir}",
        highlight=False,
        soft_wrap=True,
    )
    _print_means(outcome.scores, list(record["metrics"]))
    if outcome.skipped_metrics:
        console.print(f"[yellow]skipped metrics:[/] {', '.join(outcome.skipped_metrics)} (see record.json)")
    return outcome


def _print_means(scores: pd.DataFrame, metrics: list[str]) -> None:
    """Per-task means of the run's headline metrics (set metrics are one value per task already)."""
    shown = [m for m in metrics if m in set(scores["metric"])]
    if not shown:
        return
    from cirbench.metrics.aggregate import grouped_mean

    means = grouped_mean(scores[scores["metric"].isin(shown)], ["task", "metric"]).unstack()
    table = Table(title="mean per task")
    table.add_column("task")
    for metric in shown:
        table.add_column(metric, justify="right")
    for task, row in means.iterrows():
        table.add_row(str(task), *(f"{row[m]:.4f}" if abs(row[m]) < 10 else f"{row[m]:.2f}" for m in shown))
    console.print(table)
