"""``cirbench train``: train a registered trainable model on a built dataset, with a progress bar.

Thin layer over cirbench.training.trainer: reads the TOML config, applies command-line overrides, renders events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from cirbench.cli import app, console, device_option, task_names
from cirbench.cli.evaluate import parse_options
from cirbench.training.config import load_config


def _progress_printer(progress: Progress, bar: Any, model: str) -> Any:
    """The trainer's event callback: moves the bar and prints validation and checkpoint lines."""

    def on_event(kind: str, payload: dict[str, Any]) -> None:
        if kind == "start":
            progress.update(bar, completed=payload["start"])
            progress.console.print(
                f"training {model} on {payload['train_pairs']} pairs, validating on {payload['val_pairs']}; "
                f"steps {payload['start']} -> {payload['stop']} of {payload['total']}"
            )
        elif kind == "step":
            progress.update(bar, completed=payload["step"], description=f"loss {payload['loss']:.4f}")
        elif kind == "val":
            progress.console.print(
                f"step {payload['step']}: validation PSNR {payload['psnr']:.2f} dB (input {payload['psnr_input']:.2f} dB)"
            )
        elif kind == "checkpoint":
            progress.console.print(f"checkpoint {payload['path']}", highlight=False)

    return on_event


@app.command("train")
def train_command(
    model: Annotated[
        str, typer.Argument(help="A trainable model: registry name (promptcir-s, promptcir) or module:factory")
    ],
    data: Annotated[Path, typer.Option("--data", help="A built dataset folder (OUT/<name>) to train on")],
    tasks: Annotated[
        list[str] | None, typer.Option("--tasks", help="Only these tasks (repeatable or comma-separated)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML config: a train table (steps, batch_size, crop_size, lr ...) and a model table (options)")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, history.json, final.safetensors")] = Path(
        "runs/train"
    ),
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint")
    ] = False,
    device: Annotated[str, typer.Option("--device", callback=device_option, help="cpu, cuda or cuda:N")] = "cpu",
    init: Annotated[
        Path | None, typer.Option("--init", help="Start from these weights instead of a random init")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-O", help="Model option KEY=VALUE (repeatable)")
    ] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Override train.steps")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override train.seed")] = None,
    stop_after: Annotated[
        int | None, typer.Option("--stop-after", min=1, help="Stop (with a checkpoint) after step N; resume later")
    ] = None,
) -> None:
    """Train MODEL on paired random crops of every task of DATA (L1, AdamW, cosine; resumable)."""
    from cirbench.models import resolve_factory
    from cirbench.training.trainer import train

    recipe = getattr(resolve_factory(model), "train_recipe", None)  # a model's own defaults (e.g. the release's)
    settings = load_config(config or recipe).with_overrides(steps=steps, seed=seed)
    options = parse_options(option)
    if options:
        settings = settings.with_overrides(model_options={**settings.model_options, **options})
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        on_event = _progress_printer(progress, progress.add_task("train", total=settings.steps), model)
        result = train(
            model, data, tasks=list(task_names(tasks)) or None, config=settings, out=out, resume=resume,
            device=device, init_checkpoint=str(init) if init else None, stop_after=stop_after, on_event=on_event,
        )  # fmt: skip
    if result.finished:
        console.print(f"done: {result.steps_done} steps; weights in {result.final_weights}", highlight=False)
    else:
        console.print(f"stopped after step {result.steps_done}; continue with --resume --out {out}", highlight=False)
