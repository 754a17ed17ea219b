"""The run record (record.json) of an evaluation: what ran, on what, how long, and which metrics were skipped.

Identity fields decide which earlier run a new call resumes; sessions accumulate one entry per finished call.
"""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from cirbench.evaluation.protocols import get_protocol
from cirbench.evaluation.results import run_key_hash


@dataclass
class Timings:
    """Seconds spent per stage of one evaluate call (the model part is synchronised on CUDA)."""

    load_wait_s: float = 0.0  # waiting for the background decoder
    model_s: float = 0.0
    metrics_s: float = 0.0
    write_s: float = 0.0  # parts, previews and restored PNGs
    clamped_pixels: int = 0  # not a time: pixels with a value just outside [0, 1], clamped before scoring

    def as_dict(self, total: float) -> dict[str, float]:
        seconds = {k: round(v, 4) for k, v in asdict(self).items() if k.endswith("_s")}
        return {**seconds, "total_s": round(total, 4)}


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("cirbench", "torch", "numpy", "pillow", "scikit-image", "pandas", "lpips", "pytorch-fid", "pyiqa"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()})"


def run_identity(dataset: Any, info: Any, settings: Any, checkpoint_sha: str | None, profile: str) -> dict[str, Any]:
    """What makes two evaluations the same run (and so resumable into one another)."""
    return {
        "dataset": dataset.name,
        "taskset_sha256": dataset.taskset_sha256,
        "model": info.name,
        "model_version": info.version,
        "model_options": settings.model_options,
        "checkpoint_sha256": checkpoint_sha,
        "protocol": settings.protocol,
        "profile": profile,
        "tile": settings.tile,
        "overlap": settings.overlap if settings.tile else 0,
        **({"metrics": sorted(settings.metrics)} if getattr(settings, "metrics", ()) else {}),
        **({"rescored_from": settings.rescored_from} if getattr(settings, "rescored_from", None) else {}),
    }


def start_record(previous: dict[str, Any], identity: dict[str, Any], info: Any, settings: Any, method: str,
                 checkpoint_sha: str | None, scorer: Any, started: str) -> dict[str, Any]:  # fmt: skip
    record = dict(previous)
    checkpoint = {"path": str(Path(settings.checkpoint).resolve()), "sha256": checkpoint_sha} if checkpoint_sha else None
    record.update(
        {
            "run_id": run_key_hash(identity),
            "identity": identity,
            "method": method,
            "model": {"spec": settings.model if isinstance(settings.model, str) else f"object {type(settings.model).__name__}",
                      **asdict(info)},  # fmt: skip
            "checkpoint": checkpoint,
            "mode": "oracle" if info.needs_task_label else "blind",
            "protocol": settings.protocol,
            "protocol_description": get_protocol(settings.protocol).description,
            "profile": scorer.profile_name,
            "metrics": scorer.describe(),
            "skipped_metrics": dict(scorer.skipped),
            "status": "running",
            "failure": None,
            "is_result": bool(info.is_result),
            "not_a_result": info.not_a_result,
            "device": settings.device,
            "batch": settings.batch,
            "tile": settings.tile,
            "overlap": settings.overlap if settings.tile else 0,
            "updated_utc": started,
        }
    )
    record.setdefault("created_utc", started)
    record.setdefault("sessions", [])
    record.setdefault("tasks_complete", [])
    return record


def finish_record(record: dict[str, Any], task_order: list[str], done: list[str], skipped: dict[str, str],
                  timings: Timings, total_s: float, evaluated: int, started: str) -> dict[str, Any]:  # fmt: skip
    record = dict(record)
    complete = set(record.get("tasks_complete", [])) | set(done)
    session = {
        "started_utc": started,
        "finished_utc": now_utc(),
        "device": device_name(record.get("device", "cpu")),
        "pairs_evaluated": evaluated,
        "timings": timings.as_dict(total_s),
        "versions": versions(),
    }
    record.update(
        status="complete",
        failure=None,
        clamped_pixels=int(record.get("clamped_pixels", 0)) + timings.clamped_pixels,
        tasks_complete=[t for t in task_order if t in complete],
        skipped_metrics={**record.get("skipped_metrics", {}), **skipped},
        sessions=[*record.get("sessions", []), session],
        updated_utc=session["finished_utc"],
        versions=session["versions"],
        timings=session["timings"],
    )
    return record


def stopped_record(record: dict[str, Any], status: str, reason: str, task_order: list[str], done: list[str],
                   clamped_pixels: int = 0) -> dict[str, Any]:  # fmt: skip
    """The record of a run that stopped early (``failed`` or ``interrupted``): its finished tasks and why."""
    record = dict(record)
    complete = set(record.get("tasks_complete", [])) | set(done)
    record.update(
        status=status,
        failure=reason,
        clamped_pixels=int(record.get("clamped_pixels", 0)) + clamped_pixels,
        tasks_complete=[t for t in task_order if t in complete],
        updated_utc=now_utc(),
    )
    return record
