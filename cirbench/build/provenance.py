"""Provenance of a build: build.json beside the manifest with versions, options, task set and outcome.

It records what the manifest rows alone cannot: the task-set file and hash, unavailable tasks, failures, timing.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cirbench import __version__
from cirbench.fileio import write_text_atomic

if TYPE_CHECKING:
    from cirbench.build.planning import BuildOptions, BuildReport
    from cirbench.tasks import Task

BUILD_RECORD = "build.json"
_PACKAGES = ("numpy", "pillow", "imagecodecs", "imageio-ffmpeg", "ffmpeg-python", "torch", "compressai", "pandas", "pyarrow")


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment() -> dict[str, Any]:
    return {
        "cirbench": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }


def _merged_tasks(dataset_dir: Path, tasks: list[Task]) -> list[dict[str, Any]]:
    """Tasks of earlier builds into the same folder (other subsets or task sets) plus this build's."""
    merged: dict[str, dict[str, Any]] = {}
    previous = dataset_dir / BUILD_RECORD
    if previous.exists():
        try:
            for record in json.loads(previous.read_text(encoding="utf-8"))["taskset"]["tasks"]:
                merged[record["name"]] = record
        except (OSError, ValueError, KeyError, TypeError):
            merged = {}
    for task in tasks:
        merged[task.name] = task.as_record()
    return list(merged.values())


def write_build_record(dataset_dir: Path, report: BuildReport, options: BuildOptions, tasks: list[Task]) -> Path:
    """Write build.json; its task list covers every task ever built into this folder."""
    tasks_ever = _merged_tasks(dataset_dir, tasks)
    record = {
        "dataset": report.dataset,
        "written_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": str(options.source) if options.source else "cirbench embedded samples",
        "taskset": {
            "name": report.taskset.name,
            "path": report.taskset.path,
            "sha256": report.taskset.sha256,
            "tasks": tasks_ever,
            "built_this_run": [t.name for t in tasks],
        },
        "options": {
            "jobs": options.jobs,
            "keep_bitstreams": options.keep_bitstreams,
            "force": options.force,
            "fail_fast": options.fail_fast,
            "max_pixels": options.max_pixels,
            "scheduler": options.scheduler,
        },
        "outcome": {
            "sources": report.sources,
            "built": report.built,
            "up_to_date": report.up_to_date,
            "failures": report.failures,
            "unavailable_tasks": report.unavailable,
            "ignored_files": report.ignored_files,
            "skipped_entries": report.skipped_entries,
            "seconds": round(report.seconds, 3),
        },
        "environment": environment(),
    }
    path = dataset_dir / BUILD_RECORD
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    write_moe_diffir_data(dataset_dir, tasks_ever)
    return path


MOE_DIFFIR_DATA = "moe_diffir_data.yaml"


MOE_DIFFIR_EMPTY = "moe_diffir_unbuilt"  # an empty folder the unbuilt tasks' keys point at


def write_moe_diffir_data(dataset_dir: Path, tasks: list[dict[str, Any]]) -> Path | None:
    """Write the data section of the MoE-DiffIR authors' training config, pointing at this build's folders.

    All 21 path keys are written, so none of their ``Your_Path/...`` placeholders survives the config merge:
    built tasks point at their folders (their config's lower-case ``webp_*`` replaced by our ``WEBP_*``, the names
    of their released data), unbuilt ones at one existing empty folder. Nothing is written when no built task has a
    MoE-DiffIR id.
    """
    from cirbench.tasks import load_taskset

    built = {t["name"]: t for t in tasks if t.get("id") is not None}
    if not built:
        return None
    official = sorted((t.as_record() for t in load_taskset("moe-diffir-21").tasks), key=lambda t: t["id"])
    root = dataset_dir.resolve()
    empty = root / MOE_DIFFIR_EMPTY
    missing = [t["name"] for t in official if t["name"] not in built]
    if missing:
        empty.mkdir(exist_ok=True)
    lines = [
        f"# MoE-DiffIR data section for the cirbench build {root} (cirbench {__version__}).",
        "# Paste it over data.params.train.params of configs/MoE-DiffIR/*.yaml (or merge it, as their main.py merges",
        "# configs). Their loader finds each ground truth by basename in a hard-coded DF2K folder",
        f"# (basicsr/data/CIR_dataset.py:306) that no key changes: link it to {root / 'HR'}/ (see the README).",
    ]
    if missing:
        lines.append(f"# Not built here ({len(missing)}): {', '.join(missing)}; their keys point at the empty folder "
                     f"{empty}/.")  # fmt: skip
    lines += ["data:", "  params:", "    train:", "      params:", "        queue_size: 120", "        key: 'train'",
              "        de_type: [" + ", ".join(f"'{t['name']}'" for t in official) + "]"]  # fmt: skip
    for task in official:
        folder = root / built[task["name"]]["folder"] if task["name"] in built else empty
        lines.append(f"        {task['name']}: {_quoted(str(folder) + '/')}" + ("" if task["name"] in built else "  # not built"))
    path = dataset_dir / MOE_DIFFIR_DATA
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _quoted(text: str) -> str:
    """A YAML single-quoted scalar."""
    return "'" + text.replace("'", "''") + "'"
