"""Evaluation spread over a Dask cluster: each worker holds one model on its own device and scores whole work units.

A unit is one task's pending images (a chunk of them when the profile has no set metric), run by the ordinary
EvaluationSession on the worker, which writes its Parquet parts into the shared run folder; the caller holds the
run's lock, merges the parts and writes the record, so the run resumes and scores exactly like a local one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cirbench.errors import CirbenchError
from cirbench.evaluation.run_record import Timings

CHUNK_IMAGES = 16  # images per unit when no set metric ties a task together


@dataclass(frozen=True)
class WorkUnit:
    dataset_root: str
    run_folder: str
    method: str
    settings: dict[str, Any]  # EvaluationSettings fields (model given by name)
    task: str
    stems: tuple[str, ...]


@functools.lru_cache(maxsize=2)
def _worker_model(model: str, checkpoint: str | None, device: str, options: tuple):
    """One model per worker process, built once and kept for every unit it runs."""
    from cirbench.models import load_model

    return load_model(model, checkpoint=checkpoint, device=device, **dict(options)).to(device)


def run_unit(unit: WorkUnit) -> dict[str, float]:
    """On a worker: restore and score one unit into the run folder; returns its image count and timings."""
    from cirbench.dataset.reader import BuiltDataset
    from cirbench.evaluation.results import RunFolder
    from cirbench.evaluation.scorer import Scorer
    from cirbench.evaluation.session import EvaluationSession
    from cirbench.evaluation.settings import EvaluationSettings

    settings = EvaluationSettings(**{**unit.settings, "tasks": tuple(unit.settings["tasks"]),
                                     "metrics": tuple(unit.settings["metrics"])})  # fmt: skip
    ds = BuiltDataset.open(unit.dataset_root)
    options = tuple(sorted(settings.model_options.items()))
    model = _worker_model(str(settings.model), settings.checkpoint, settings.device, options)
    scorer = Scorer(settings.profile, settings.device, only=settings.metrics)
    session = EvaluationSession(ds, model, scorer, RunFolder(Path(unit.run_folder)), settings, unit.method)
    count = session.run({unit.task: list(unit.stems)}, None)
    return {"images": count, **asdict(session.timings), "clamped_pixels": session.clamped_pixels}


def work_units(pending: dict[str, list[str]], has_sets: bool, base: dict[str, Any]) -> list[WorkUnit]:
    size = None if has_sets else CHUNK_IMAGES
    units = []
    for task, stems in pending.items():
        step = size or max(1, len(stems))
        for start in range(0, len(stems), step):
            units.append(WorkUnit(**base, task=task, stems=tuple(stems[start : start + step])))
    return units


def run_on_cluster(scheduler: str, units: list[WorkUnit], progress: Callable[[int, int, str], None] | None) -> Timings:
    """Submit every unit to the Dask scheduler at ``scheduler``; sum the workers' timings."""
    from cirbench.build.runner import dask_client

    client = dask_client(scheduler)
    from distributed import as_completed

    timings, total, done = Timings(), sum(len(u.stems) for u in units), 0
    try:
        futures = {client.submit(run_unit, unit, pure=False): unit for unit in units}
        for future in as_completed(futures):
            result = future.result()  # a worker's typed error is raised here, with its message
            done += int(result["images"])
            for field in ("load_wait_s", "model_s", "metrics_s", "write_s", "clamped_pixels"):
                setattr(timings, field, getattr(timings, field) + result[field])
            if progress is not None:
                progress(done, total, futures[future].task)
    finally:
        client.close()
    return timings


def distributable(settings: Any) -> dict[str, Any]:
    """The settings a worker needs, as plain values; the model must be a name (workers build their own)."""
    if not isinstance(settings.model, str):
        raise CirbenchError("--scheduler needs a model name or module:factory (each worker builds its own model)")
    return asdict(replace(settings, scheduler=None))
