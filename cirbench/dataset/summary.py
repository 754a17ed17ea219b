"""Summaries of built datasets read back from their manifests (for ``cirbench info`` and the demo).

Per task: image count, mean bpp and mean RGB PSNR of the decoded images against HR.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cirbench.build.manifest import MANIFEST_NAME, read_manifest_table
from cirbench.errors import ManifestError


@dataclass(frozen=True)
class TaskSummary:
    task: str
    task_id: int | None
    folder: str
    codec: str
    images: int
    mean_bpp: float
    mean_psnr: float


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    path: Path
    images: int
    rows: list[TaskSummary]


def _dataset_dirs(path: Path) -> list[Path]:
    if (path / MANIFEST_NAME).exists():
        return [path]
    found = sorted(p.parent for p in path.glob(f"*/{MANIFEST_NAME}"))
    if not found:
        raise ManifestError(f"{path} holds no built dataset ({MANIFEST_NAME} not found in it or its subfolders)")
    return found


def summarise_one(dataset_dir: Path) -> DatasetSummary:
    frame = read_manifest_table(dataset_dir)
    lq = frame[frame["kind"] == "lq"]
    rows = []
    order = lq.groupby("task", sort=False)["task_id"].first().sort_values(na_position="last", kind="stable")
    for task in order.index:
        part = lq[lq["task"] == task]
        task_id = part["task_id"].iloc[0]
        rows.append(
            TaskSummary(
                task=str(task),
                task_id=None if task_id != task_id or task_id is None else int(task_id),
                folder=str(part["folder"].iloc[0]),
                codec=str(part["codec"].iloc[0]),
                images=int(part["image"].nunique()),
                mean_bpp=float(part["bpp"].mean()),
                mean_psnr=float(part["psnr"].mean()),
            )
        )
    images = int((frame["kind"] == "hr").sum())
    return DatasetSummary(name=dataset_dir.name, path=dataset_dir, images=images, rows=rows)


def summarise_dataset(path: Path) -> list[DatasetSummary]:
    return [summarise_one(d) for d in _dataset_dirs(Path(path))]
