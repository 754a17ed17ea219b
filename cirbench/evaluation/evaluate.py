"""`cirbench evaluate`: run a restoration model over every (image, task) of a built dataset and score it.

One protocol, one metric profile; results go to the dataset's results store batch by batch (resumable).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from cirbench.build.runner import check_scheduler
from cirbench.cpu_memory import keep_freed_memory
from cirbench.dataset.reader import BuiltDataset
from cirbench.errors import CirbenchError, ConfigError
from cirbench.evaluation.protocols import get_protocol
from cirbench.evaluation.results import SET_LEVEL_IMAGE, ResultsError, ResultsStore, RunFolder, run_key_hash, writable
from cirbench.evaluation.run_record import finish_record, now_utc, run_identity, start_record, stopped_record
from cirbench.evaluation.scorer import Scorer
from cirbench.evaluation.session import EvaluationSession, Progress
from cirbench.evaluation.settings import EvaluationSettings
from cirbench.fileio import sha256_file
from cirbench.models import ModelError, ModelInfo, RestorationModel, check_device, load_model
from cirbench.models.checkpoints import CheckpointError
from cirbench.models.tiling import check_tiling
from cirbench.tasks import Task

DEFAULT_OVERLAP = 32


@dataclass
class EvaluationOutcome:
    run_dir: Path
    record: dict[str, Any]
    scores: pd.DataFrame
    evaluated: int  # (image, task) pairs restored in this call
    reused: int  # pairs already scored by an earlier call of the same run
    skipped_metrics: dict[str, str]


def _check_settings(settings: EvaluationSettings) -> None:
    get_protocol(settings.protocol)
    check_device(settings.device)
    if settings.scheduler:
        check_scheduler(settings.scheduler)
    if settings.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {settings.batch}")
    if settings.tile:
        check_tiling(settings.tile, settings.overlap or 0, 1)
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{settings.device}' requested but CUDA is not available on this machine")


def _effective_tiling(settings: EvaluationSettings, info: ModelInfo) -> EvaluationSettings:
    """Resolve tile/overlap: explicit values win, else the model's preferred tile size; tile 0 = whole image."""
    tile = info.tile_size if settings.tile is None else (settings.tile or None)
    if tile is None:
        return replace(settings, tile=None, overlap=0)
    overlap = min(DEFAULT_OVERLAP, tile // 4) if settings.overlap is None else settings.overlap
    return replace(settings, tile=tile, overlap=overlap)


def _has_set_values(rows: pd.DataFrame, names: set[str]) -> bool:
    present = set(rows.loc[rows["image"] == SET_LEVEL_IMAGE, "metric"])
    return all(any(m == n or m.startswith(f"{n}_") for m in present) for n in names)


def _pending(ds: BuiltDataset, tasks: list[Task], done: pd.DataFrame, scorer: Scorer) -> dict[str, list[str]]:
    """Images still to restore per task (a task whose set metrics are missing reruns all its images)."""
    paired = {m.result_name for m in scorer.metrics if m.kind == "paired"}
    set_metrics = {m.result_name for m in scorer.metrics if m.kind == "distribution"}
    pending: dict[str, list[str]] = {}
    for task in tasks:
        stems = [s for s in ds.images if ds.lq_path(task, s).is_file()]
        rows = done[done["task"] == task.name]
        if set_metrics and not _has_set_values(rows, set_metrics):
            pending[task.name] = stems
            continue
        per_image = rows[rows["metric"].isin(paired)].groupby("image")["metric"].nunique()
        finished = set(per_image[per_image >= len(paired)].index)
        pending[task.name] = [s for s in stems if s not in finished]
    return pending


def _model_of(settings: EvaluationSettings) -> RestorationModel:
    """The model to evaluate: built from its name, or the object passed in (checked like a built one)."""
    if isinstance(settings.model, str):
        return load_model(settings.model, checkpoint=settings.checkpoint, device=settings.device, **settings.model_options)
    model = settings.model
    if not isinstance(getattr(model, "info", None), ModelInfo) or not callable(getattr(model, "restore", None)):
        raise ModelError(f"{type(model).__name__} is not a RestorationModel (needs .info: ModelInfo and .restore)")
    return model


def _run_pending(ds, model, scorer, folder, settings, method, pending, progress, on_task_done):
    """(pairs restored, timings): here, or as work units on the Dask cluster of ``settings.scheduler``."""
    if not settings.scheduler:
        session = EvaluationSession(ds, model, scorer, folder, settings, method)
        session.on_task_done = lambda task: on_task_done(task, session.clamped_pixels)
        return session.run(pending, progress), session.timings
    from cirbench.evaluation import distributed

    base = {"dataset_root": str(ds.root.resolve()), "run_folder": str(folder.path.resolve()), "method": method,
            "settings": distributed.distributable(settings)}  # fmt: skip
    units = distributed.work_units(pending, scorer.has_distribution, base)
    timings = distributed.run_on_cluster(settings.scheduler, units, progress)
    return sum(len(stems) for stems in pending.values()), timings


def _finished_tasks(ds: BuiltDataset, tasks: list[Task], scores: pd.DataFrame, scorer: Scorer) -> list[str]:
    return [name for name, stems in _pending(ds, tasks, scores, scorer).items() if not stems]


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if isinstance(exc, CirbenchError) else f"{type(exc).__name__}: {text}"


def _stop(folder: RunFolder, record: dict[str, Any], created: bool, exc: BaseException, ds: BuiltDataset,
          tasks: list[Task], scorer: Scorer) -> None:  # fmt: skip
    """A run that stopped early: gone if it was new and scored nothing, else marked failed/interrupted, tasks kept."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    try:
        scores = folder.scores()
    except ResultsError:
        scores = None
    if created and scores is not None and scores.empty:
        folder.remove()  # nothing to keep: no folder poisons later commands
        return
    done = _finished_tasks(ds, tasks, scores, scorer) if scores is not None else []
    folder.write_record(stopped_record(record, status, _one_line(exc), ds.task_names(), done))


def _complete_run(ds: BuiltDataset, tasks: list[Task], folder: RunFolder, scorer: Scorer) -> EvaluationOutcome | None:
    """The finished run of this configuration, read without writing anything (a read-only dataset)."""
    record = folder.read_record() if folder.path.is_dir() else {}
    if record.get("status") != "complete":
        return None
    scores = folder.scores()
    if any(_pending(ds, tasks, scores, scorer).values()):
        return None
    pairs = sum(1 for _ in ds.pairs([t.name for t in tasks]))
    return EvaluationOutcome(folder.path, record, scores, 0, pairs, dict(record.get("skipped_metrics", {})))


def _method_label(model: RestorationModel, settings: EvaluationSettings, sha: str | None) -> str:
    if settings.method:
        return settings.method
    return f"{model.info.name}@{sha[:8]}" if sha else model.info.name


def evaluate(
    dataset: str | Path | BuiltDataset,
    settings: EvaluationSettings,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
) -> EvaluationOutcome:
    """Evaluate ``settings.model`` on ``dataset``; resumes the matching run if an earlier call was interrupted."""
    started, clock = now_utc(), time.perf_counter()
    _check_settings(settings)
    ds = dataset if isinstance(dataset, BuiltDataset) else BuiltDataset.open(dataset)
    tasks = ds.select_tasks(list(settings.tasks))
    if settings.checkpoint and not Path(settings.checkpoint).is_file():
        raise CheckpointError(f"checkpoint {settings.checkpoint} does not exist")
    sha = sha256_file(settings.checkpoint) if settings.checkpoint else None
    if settings.device == "cpu":
        keep_freed_memory()
    # with a scheduler the workers hold the models; here it only describes itself, on the CPU
    model = _model_of(replace(settings, device="cpu") if settings.scheduler else settings)
    model = model.to("cpu" if settings.scheduler else settings.device)
    settings = _effective_tiling(settings, model.info)
    if settings.tile is not None:
        check_tiling(settings.tile, settings.overlap, model.info.size_multiple)
    scorer = Scorer(settings.profile, settings.device, warn=warn or (lambda message: None), only=settings.metrics)
    method = _method_label(model, settings, sha)
    identity = run_identity(ds, model.info, settings, sha, scorer.profile_name)
    store = ResultsStore(ds.results_dir())
    folder = store.run_folder(method, settings.protocol, scorer.profile_name, run_key_hash(identity))
    if not writable(folder.path):
        done = None if settings.force else _complete_run(ds, tasks, folder, scorer)
        if done is None:
            raise ResultsError(f"the dataset folder {ds.root} is read-only: this run's results cannot be written "
                               "(copy the dataset somewhere writable, or make it writable)")  # fmt: skip
        return done
    created = not folder.path.exists()
    names = [t.name for t in tasks]
    with folder.lock():
        if settings.force:
            folder.clear()
        record = start_record(folder.read_record(), identity, model.info, settings, method, sha, scorer, started)
        folder.write_record(record)
        base_clamped = int(record.get("clamped_pixels", 0))

        def task_done(task: str, clamped: int) -> None:
            complete = set(record["tasks_complete"]) | {task}
            record.update(tasks_complete=[t for t in ds.task_names() if t in complete], clamped_pixels=base_clamped + clamped)
            folder.write_record(record)

        try:
            pending = _pending(ds, tasks, folder.scores(), scorer)
            evaluated, timings = _run_pending(ds, model, scorer, folder, settings, method, pending, progress, task_done)
        except (Exception, KeyboardInterrupt) as exc:
            _stop(folder, record, created, exc, ds, tasks, scorer)
            raise
        scores = folder.finalise()
        record["clamped_pixels"] = base_clamped
        total_s = time.perf_counter() - clock
        record = finish_record(record, ds.task_names(), names, scorer.skipped, timings, total_s, evaluated, started)
        folder.write_record(record)
    reused = sum(1 for _ in ds.pairs(names)) - evaluated
    return EvaluationOutcome(folder.path, record, scores, evaluated, reused, dict(scorer.skipped))
