"""Run management: list, inspect, delete and prune the runs in a dataset's results store (`cirbench runs`).

A run's status comes from its record, its lock and its files: complete, partial, running, interrupted, failed,
unreadable or empty; no run, however damaged, stops the others from being listed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cirbench.dataset.reader import BuiltDataset
from cirbench.errors import CirbenchError
from cirbench.evaluation.results import (
    SET_LEVEL_IMAGE,
    ResultsError,
    ResultsStore,
    RunEntry,
    RunFolder,
    record_is_result,
)

STATUSES = ("complete", "partial", "running", "interrupted", "failed", "unreadable", "empty")
PRUNED = ("failed", "empty", "unreadable")  # what `runs prune` removes
NOT_FINISHED = ("partial", "running", "interrupted", "failed")


class RunsError(CirbenchError):
    """A path is not a run folder of a results store."""


@dataclass
class RunSummary:
    """One line of `cirbench runs`: what the run is, how far it got, whether it is a result."""

    path: Path
    label: str
    status: str
    reason: str = ""  # why it failed, or why it is unreadable
    model: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    mode: str = ""
    protocol: str = ""
    profile: str = ""
    tasks_done: int = 0
    tasks_total: int = 0
    pairs: int = 0
    is_result: bool = True
    not_a_result: str = ""
    created: str = ""
    size_bytes: int = 0

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _status(entry: RunEntry, tasks: list[str]) -> tuple[str, str, int]:
    """(status, reason, scored pairs) of one run folder."""
    if entry.problem:
        return "unreadable", entry.problem, 0
    try:
        scores = entry.folder.scores()
    except ResultsError as exc:
        return "unreadable", str(exc), 0
    pairs = len(scores.loc[scores["image"] != SET_LEVEL_IMAGE, ["image", "task"]].drop_duplicates())
    if not entry.record:
        return ("empty", "no record.json", 0) if scores.empty else ("unreadable", "scores without a record.json", pairs)
    state = entry.record.get("status")
    reason = str(entry.record.get("failure") or "")
    if state == "running":
        return ("running", "", pairs) if entry.folder.busy() else ("interrupted", "killed while running", pairs)
    if state in ("failed", "interrupted"):
        return state, reason, pairs
    done = set(entry.record.get("tasks_complete", []))
    return ("complete" if set(tasks) <= done else "partial"), "", pairs


def summarise(entry: RunEntry, label: str, tasks: list[str]) -> RunSummary:
    status, reason, pairs = _status(entry, tasks)
    record = entry.record
    summary = RunSummary(entry.folder.path, label, status, reason, pairs=pairs, tasks_total=len(tasks),
                         size_bytes=_size(entry.folder.path))  # fmt: skip
    if not record:
        return summary
    summary.is_result, summary.not_a_result = record_is_result(record)
    identity = record.get("identity", {})
    summary.model = str(identity.get("model", record.get("model", {}).get("name", "")))
    summary.options = dict(identity.get("model_options") or {})
    summary.mode, summary.protocol, summary.profile = record.get("mode", ""), record["protocol"], record["profile"]
    summary.tasks_done = len(set(record.get("tasks_complete", [])) & set(tasks))
    summary.created = str(record.get("created_utc", ""))
    return summary


def list_runs(dataset: str | Path | BuiltDataset) -> list[RunSummary]:
    """Every run folder of ``dataset``'s results store, oldest first; unreadable ones included, never raised."""
    ds = dataset if isinstance(dataset, BuiltDataset) else BuiltDataset.open(dataset)
    store = ResultsStore(ds.results_dir())
    labels = {folder.path: label for folder, _, label in store.labelled_runs()}
    tasks = ds.task_names()
    found = [summarise(e, labels.get(e.folder.path, e.folder.path.name), tasks) for e in store.entries()]
    return sorted(found, key=lambda s: (s.created or "~", s.path.name))


def run_folder(path: str | Path) -> RunFolder:
    """``path`` as a run folder (OUT/<name>/results/runs/<run>); RunsError for anything else."""
    path = Path(path)
    if not path.is_dir() or path.parent.name != "runs" or path.parent.parent.name != "results":
        raise RunsError(f"{path} is not a run folder (runs live in OUT/<name>/results/runs/<run>; "
                        "`cirbench runs OUT/<name>` lists them)")  # fmt: skip
    return RunFolder(path)


def show_run(path: str | Path) -> dict[str, Any]:
    """The run's record plus its derived status (`cirbench runs show`)."""
    folder = run_folder(path)
    ds = BuiltDataset.open(folder.path.parents[2])
    entry = next((e for e in ResultsStore(ds.results_dir()).entries() if e.folder.path == folder.path), None)
    if entry is None:  # pragma: no cover - run_folder checked the layout
        raise RunsError(f"{path} is not a run of {ds.root}")
    summary = next(s for s in list_runs(ds) if s.path == folder.path)
    return {"summary": summary.as_record(), "record": entry.record}


def remove_runs(paths: list[str | Path]) -> list[Path]:
    """Delete whole run folders (checked to be run folders first, all of them before any is deleted)."""
    folders = [run_folder(p) for p in paths]
    for folder in folders:
        if folder.busy():
            raise RunsError(f"{folder.path} is being evaluated by a running process; stop it first")
    for folder in folders:
        folder.remove()
    return [f.path for f in folders]


def prunable(dataset: str | Path | BuiltDataset) -> list[RunSummary]:
    """The runs `cirbench runs prune` removes: failed, empty and unreadable ones."""
    return [s for s in list_runs(dataset) if s.status in PRUNED]
