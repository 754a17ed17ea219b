"""Read access to a built dataset (OUT/<name>): its task set, images, (HR, LQ) pairs and manifest.

Written by `cirbench build`; read by evaluate, leaderboard and report. Images load as 8-bit RGB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cirbench.errors import CirbenchError
from cirbench.tasks import Task

BUILD_FILE = "build.json"
MANIFEST_FILE = "manifest.parquet"
HR_FOLDER = "HR"


class DatasetError(CirbenchError):
    """A folder is not a built cirbench dataset, or a file of it cannot be read."""


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as uint8 HxWx3 RGB; DatasetError if unreadable or not 8-bit RGB."""
    import io

    from PIL import Image, UnidentifiedImageError

    from cirbench.fileio import decode_png_rgb8

    try:
        data = Path(path).read_bytes()
        rgb = decode_png_rgb8(data)
        if rgb is not None:
            return rgb
        with Image.open(io.BytesIO(data)) as image:
            if image.mode != "RGB":
                raise DatasetError(f"{path}: expected an 8-bit RGB PNG, found mode {image.mode}")
            return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from exc


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 [1,3,H,W] in [0,1]."""
    return torch.from_numpy(np.require(rgb, np.uint8, ["C", "W"])).permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """float [B,3,H,W] in [0,1] -> uint8 [B,H,W,3] on CPU, rounded to nearest (what a PNG stores)."""
    return image.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def _task_from_record(record: dict[str, Any]) -> Task:
    return Task(
        name=str(record["name"]),
        folder=str(record["folder"]),
        codec=str(record["codec"]),
        family=str(record["family"]),
        level=record["level"],
        params=dict(record.get("params") or {}),
        id=record.get("id"),
        kind=str(record.get("kind", "traditional")),
    )


@dataclass
class BuiltDataset:
    """A dataset folder written by `cirbench build`."""

    root: Path
    build: dict[str, Any]
    tasks: list[Task] = field(default_factory=list)

    @classmethod
    def open(cls, root: str | Path) -> BuiltDataset:
        """The dataset at ``root``; a build root (OUT) holding exactly one dataset opens that one."""
        root = Path(root)
        build_file = root / BUILD_FILE
        if not (root / HR_FOLDER).is_dir() or not build_file.is_file():
            inside = sorted(p for p in root.iterdir() if (p / BUILD_FILE).is_file()) if root.is_dir() else []
            if len(inside) == 1:
                return cls.open(inside[0])
            if inside:
                names = ", ".join(str(p) for p in inside)
                raise DatasetError(f"{root} is a build root with {len(inside)} datasets; did you mean one of: {names}?")
            raise DatasetError(
                f"{root} is not a built cirbench dataset (needs {BUILD_FILE} and {HR_FOLDER}/; run `cirbench build`)"
            )
        try:
            build = json.loads(build_file.read_text(encoding="utf-8"))
            records = build["taskset"]["tasks"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{build_file}: unreadable or has no taskset.tasks ({exc})") from exc
        return cls(root=root, build=build, tasks=[_task_from_record(r) for r in records])

    @property
    def name(self) -> str:
        return str(self.build.get("dataset") or self.root.name)

    @property
    def taskset_sha256(self) -> str:
        return str(self.build.get("taskset", {}).get("sha256", ""))

    @cached_property
    def images(self) -> list[str]:
        return sorted(p.stem for p in (self.root / HR_FOLDER).glob("*.png"))

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if name.lower() in (task.name.lower(), task.folder.lower()):
                return task
        raise DatasetError(f"dataset '{self.name}' has no task '{name}' (tasks: {', '.join(self.task_names())})")

    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def select_tasks(self, names: list[str] | None) -> list[Task]:
        """Tasks in task-set order; all when ``names`` is empty."""
        if not names:
            return list(self.tasks)
        wanted = {self.task(n).name for n in names}
        return [t for t in self.tasks if t.name in wanted]

    def hr_path(self, stem: str) -> Path:
        return self.root / HR_FOLDER / f"{stem}.png"

    def lq_path(self, task: Task, stem: str) -> Path:
        return self.root / task.folder / f"{stem}.png"

    def pairs(self, tasks: list[str] | None = None) -> Iterator[tuple[str, Task, Path, Path]]:
        """(stem, task, hr_path, lq_path) for every existing LQ file, tasks in task-set order, images sorted."""
        for task in self.select_tasks(tasks):
            for stem in self.images:
                lq = self.lq_path(task, stem)
                if lq.is_file():
                    yield stem, task, self.hr_path(stem), lq

    @cached_property
    def manifest(self) -> pd.DataFrame:
        path = self.root / MANIFEST_FILE
        if not path.is_file():
            raise DatasetError(f"{path} is missing: the dataset was not built completely")
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: unreadable manifest ({exc})") from exc

    def results_dir(self) -> Path:
        """Where evaluation results of this dataset are stored (beside the images)."""
        return self.root / "results"
