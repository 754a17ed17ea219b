"""`cirbench rescore`: score the saved restored images of an existing run under another profile or metric set.

The model is not run: a replay model hands evaluate the run's saved 8-bit PNGs, matched to each (task, LQ) by the
LQ's bytes, so protocol, batching, resume, set metrics and the run record are evaluate's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cirbench.dataset.reader import BuiltDataset, read_rgb
from cirbench.errors import CirbenchError
from cirbench.evaluation.evaluate import EvaluationOutcome, EvaluationSettings, evaluate
from cirbench.evaluation.protocols import get_protocol
from cirbench.evaluation.results import RunFolder
from cirbench.models import ModelInfo


class RescoreError(CirbenchError):
    """A run cannot be rescored: it is not a run folder, or its restored images were not saved."""


def _digest(rgb: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode()).hexdigest()


class SavedImagesReplay:
    """A RestorationModel whose output for an LQ is the image the original run saved for it."""

    def __init__(self, ds: BuiltDataset, run: RunFolder, record: dict, tasks: list[str]) -> None:
        model = record.get("model", {})
        self.info = ModelInfo(
            name=str(model.get("name", record["method"])), version=str(model.get("version", "")),
            needs_task_label=bool(model.get("needs_task_label", False)),
            description=f"replay of the saved images of run {record.get('run_id', run.path.name)}",
        )  # fmt: skip
        protocol = get_protocol(record["protocol"])
        self.saved: dict[str, Path] = {}  # LQ digest (protocol region) -> saved restored image
        missing, ambiguous = [], []
        for task in ds.select_tasks(tasks):
            for stem in ds.images:
                path = run.images_dir / task.folder / f"{stem}.png"
                if not path.is_file():
                    missing.append(f"{task.folder}/{stem}.png")
                    continue
                lq = read_rgb(ds.lq_path(task, stem))
                key = _digest(protocol.region(lq, stem))
                if key in self.saved and not np.array_equal(read_rgb(self.saved[key]), read_rgb(path)):
                    ambiguous.append(f"{task.folder}/{stem}.png")
                self.saved[key] = path
        if missing:
            raise RescoreError(
                f"run {run.path} has no saved restored images for {len(missing)} pair(s) (e.g. {missing[0]}); "
                "repeat the evaluation with --save-images, then rescore it"
            )
        if ambiguous:
            raise RescoreError(f"identical inputs with different saved outputs ({ambiguous[0]}): cannot replay run {run.path}")

    def restore(self, lq: torch.Tensor, task) -> torch.Tensor:
        pixels = (lq.detach().cpu() * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = []
        for rgb in pixels:
            path = self.saved.get(_digest(rgb))
            if path is None:
                raise RescoreError("no saved image matches an input of the run; was the dataset rebuilt since?")
            out.append(torch.from_numpy(read_rgb(path)).permute(2, 0, 1).float() / 255.0)
        return torch.stack(out).to(lq.device)

    def to(self, device: str) -> SavedImagesReplay:
        return self


def _run_folder(run: str | Path) -> tuple[RunFolder, dict, BuiltDataset]:
    path = Path(run)
    record = RunFolder(path).read_record()
    if not record:
        raise RescoreError(f"{path} is not an evaluation run folder (no record.json); runs live in OUT/<name>/results/runs/")
    return RunFolder(path), record, BuiltDataset.open(path.parents[2])


def rescore(run: str | Path, profile: str, metrics: tuple[str, ...] = (), device: str = "cpu",
            progress=None, warn: Callable[[str], None] | None = None) -> EvaluationOutcome:  # fmt: skip
    """A new run under ``profile`` (and ``metrics``) from the saved images of ``run``; the model is not run."""
    folder, record, ds = _run_folder(run)
    tasks = list(record.get("tasks_complete", []))
    if not tasks:
        raise RescoreError(f"run {folder.path} has no finished task to rescore")
    # identity's outputs are the dataset's own LQ files: nothing was saved, and nothing needs to be
    is_identity = record.get("model", {}).get("name") == "identity" and not record.get("checkpoint")
    replay = "identity" if is_identity else SavedImagesReplay(ds, folder, record, tasks)
    settings = EvaluationSettings(
        model=replay, model_options=dict(record.get("identity", {}).get("model_options", {})), tasks=tuple(tasks),
        device=device, protocol=record["protocol"], profile=profile, metrics=tuple(metrics), method=record["method"],
        tile=0, rescored_from=str(record.get("run_id", folder.path.name)),
    )  # fmt: skip
    return evaluate(ds, settings, progress=progress, warn=warn)
