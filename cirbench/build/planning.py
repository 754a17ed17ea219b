"""Planning a build: its options, each task's resolved codec parameters, entry fingerprints and the report.

The builder fills a BuildReport; provenance writes it to build.json. Nothing here touches the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirbench.build.sources import DEFAULT_MAX_PIXELS
from cirbench.errors import CodecUnavailable, ConfigError, UnknownNameError
from cirbench.tasks import Task, TaskSet


def check_dataset_name(name: str) -> str:
    """``name`` if it is one plain folder name under OUT; ConfigError for separators, '..', absolute paths."""
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name
           or os.path.isabs(name) or len(os.fsencode(name)) > 255)  # fmt: skip
    if bad:
        raise ConfigError(f"dataset name '{name}' must be one folder name (no '/', '\\', '..' or absolute path); "
                          "the dataset goes to OUT/<name>")  # fmt: skip
    return name


@dataclass
class BuildOptions:
    out: Path
    source: Path | None = None
    taskset: str = "moe-diffir-21"
    name: str | None = None
    tasks: list[str] | None = None
    jobs: int = 1
    keep_bitstreams: bool = False
    force: bool = False
    dry_run: bool = False
    fail_fast: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.name is not None:
            check_dataset_name(self.name)
        if self.scheduler:
            from cirbench.build.runner import check_scheduler

            check_scheduler(self.scheduler)
        if self.jobs < 1:
            raise ConfigError(f"jobs must be >= 1, got {self.jobs}")
        if self.max_pixels < 1:
            raise ConfigError(f"max_pixels must be >= 1, got {self.max_pixels}")


@dataclass
class TaskPlan:
    """A task with its fully resolved codec parameters and tool versions, or why it cannot run."""

    task: Task
    params: dict[str, Any] = field(default_factory=dict)
    tool_versions: dict[str, str] = field(default_factory=dict)
    suffix: str = ".bin"
    unavailable: str | None = None


@dataclass
class BuildReport:
    dataset: str
    dataset_dir: Path
    taskset: TaskSet
    sources: int = 0
    built: int = 0
    up_to_date: int = 0
    would_build: int = 0
    failures: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)
    skipped_entries: list[str] = field(default_factory=list)  # 'name: reason' of unused folder entries
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def plan_tasks(tasks: list[Task]) -> list[TaskPlan]:
    """Resolve each task's codec; unknown or unavailable codecs become explained 'unavailable' plans."""
    plans = []
    for task in tasks:
        try:
            codec = task.create_codec()
            codec.check_available()
        except UnknownNameError as exc:
            plans.append(TaskPlan(task, unavailable=f"codec '{task.codec}' is not installed ({exc})"))
            continue
        except CodecUnavailable as exc:
            plans.append(TaskPlan(task, unavailable=str(exc)))
            continue
        plans.append(TaskPlan(task, codec.parameters(), codec.tool_versions(), codec.file_suffix))
    return plans


def fingerprint(source_sha256: str, plan: TaskPlan) -> str:
    blob = json.dumps([source_sha256, plan.task.codec, plan.params, plan.tool_versions], sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
