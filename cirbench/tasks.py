"""Task sets: the declarative list of degradations (codec + parameters + folder + MoE-DiffIR id) in TOML.

A task set is a file in ``codecs/`` (or any path) that users copy and edit; this module loads and checks it.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirbench.errors import ConfigError
from cirbench.resources import shipped_dir

_FOLDER_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")


@dataclass(frozen=True)
class Task:
    """One degradation: e.g. HEVC_47 = codec hevc, qp 47, folder HM_47, MoE-DiffIR task id 6."""

    name: str
    folder: str
    codec: str
    family: str
    level: int | str
    params: dict[str, Any] = field(hash=False)
    id: int | None = None
    kind: str = "traditional"

    def create_codec(self):  # -> Codec (imported lazily: task sets load without codec modules)
        from cirbench.codecs import create_codec

        return create_codec(self.codec, **self.params)

    def as_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": self.folder,
            "codec": self.codec,
            "family": self.family,
            "level": self.level,
            "params": dict(self.params),
            "id": self.id,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class TaskSet:
    """A named, ordered list of tasks loaded from a TOML file, with that file's sha256."""

    name: str
    description: str
    tasks: list[Task]
    path: str
    sha256: str

    def by_name(self, name: str) -> Task:
        for task in self.tasks:
            if task.name.lower() == name.lower() or task.folder.lower() == name.lower():
                return task
        raise ConfigError(f"task set '{self.name}' has no task '{name}'")

    def select(self, names: list[str] | None) -> list[Task]:
        return list(self.tasks) if not names else [self.by_name(n) for n in names]


def shipped_tasksets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(shipped_dir("codecs").glob("*.toml"))}


def resolve_taskset_path(spec: str) -> Path:
    """A shipped task-set name (``moe-diffir-21``) or a path to a TOML file."""
    candidate = Path(spec)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"task set file {candidate} does not exist")
        return candidate
    shipped = shipped_tasksets()
    if spec in shipped:
        return shipped[spec]
    raise ConfigError(f"unknown task set '{spec}' (shipped: {', '.join(shipped)}; or give a .toml path)")


def _parse_task(entry: dict[str, Any], codec_defaults: dict[str, dict[str, Any]], where: str) -> Task:
    required = ("name", "codec", "family", "level")
    missing = [k for k in required if k not in entry]
    if missing:
        raise ConfigError(f"{where}: task is missing {', '.join(missing)}")
    unknown = set(entry) - {*required, "folder", "params", "id", "kind"}
    if unknown:
        raise ConfigError(f"{where}: task '{entry['name']}' has unknown keys {sorted(unknown)}")
    folder = str(entry.get("folder", entry["name"]))
    if not folder or not set(folder) <= _FOLDER_CHARS or folder in {"HR", ".", ".."}:
        raise ConfigError(f"{where}: task '{entry['name']}' has an invalid folder name '{folder}'")
    params = {**codec_defaults.get(entry["codec"], {}), **entry.get("params", {})}
    task_id = entry.get("id")
    if task_id is not None and (not isinstance(task_id, int) or task_id < 0):
        raise ConfigError(f"{where}: task '{entry['name']}' id must be a non-negative integer")
    return Task(
        name=str(entry["name"]),
        folder=folder,
        codec=str(entry["codec"]),
        family=str(entry["family"]),
        level=entry["level"],
        params=params,
        id=task_id,
        kind=str(entry.get("kind", "traditional")),
    )


def _check_unique(tasks: list[Task], where: str) -> None:
    for attribute in ("name", "folder", "id"):
        values = [getattr(t, attribute) for t in tasks if getattr(t, attribute) is not None]
        lowered = [v.lower() if isinstance(v, str) else v for v in values]
        duplicates = sorted({str(v) for v in lowered if lowered.count(v) > 1})
        if duplicates:
            raise ConfigError(f"{where}: duplicate task {attribute}(s): {', '.join(duplicates)}")


def load_taskset(spec: str) -> TaskSet:
    """Load and check a task set by shipped name or path; ConfigError says what is wrong and where."""
    path = resolve_taskset_path(spec)
    raw = path.read_bytes()
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    header = doc.get("taskset", {})
    entries = doc.get("task", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[task]] entries")
    defaults = doc.get("codec", {})
    tasks = [_parse_task(e, defaults, str(path)) for e in entries]
    _check_unique(tasks, str(path))
    return TaskSet(
        name=str(header.get("name", path.stem)),
        description=str(header.get("description", "")),
        tasks=tasks,
        path=str(path),
        sha256=hashlib.sha256(raw).hexdigest(),
    )
