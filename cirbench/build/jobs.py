"""The two units of work of a build, run in worker processes: prepare one source, code one (image, task).

Each returns a manifest row or a failure message (typed errors never cross the process boundary raw).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cirbench import __version__
from cirbench.build.sources import SourceImage, load_source
from cirbench.codecs import create_codec
from cirbench.errors import CirbenchError, SourceImageError
from cirbench.fileio import encode_png, sha256_bytes, sha256_file, write_bytes_atomic


@dataclass(frozen=True)
class JobOutcome:
    """What a job produced: a manifest row, or an error line naming the file and the reason."""

    label: str
    row: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class SourceJob:
    path: str
    dataset: str
    dataset_dir: str
    max_pixels: int
    known_row: dict[str, Any] | None = None  # the hr row of an earlier build, if any


@dataclass(frozen=True)
class TaskJob:
    source_path: str
    source_sha256: str
    dataset: str
    dataset_dir: str
    task: dict[str, Any]
    params: dict[str, Any]
    tool_versions: dict[str, str]
    fingerprint: str
    keep_bitstreams: bool
    max_pixels: int
    bitstream_suffix: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def psnr_rgb(reference: np.ndarray, test: np.ndarray) -> float:
    """RGB PSNR in dB (peak 255) of two uint8 images, from an exact integer sum of squares; inf when identical."""
    diff = np.subtract(reference, test, dtype=np.int32)
    squared = int(np.einsum("ijk,ijk->", diff, diff, dtype=np.int64))
    if squared == 0:
        return float("inf")
    return 10.0 * float(np.log10(255.0**2 * diff.size / squared))


def _write_png_if_changed(path: Path, png: bytes) -> str:
    digest = sha256_bytes(png)
    if not (path.exists() and sha256_file(path) == digest):
        write_bytes_atomic(path, png)
    return digest


def _source_columns(source: SourceImage, dataset: str) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "image": source.stem,
        "source_file": source.path.name,
        "source_sha256": source.sha256,
        "source_bytes": source.file_bytes,
        "source_mode": source.source_mode,
        "source_conversion": source.conversion,
        "height": source.height,
        "width": source.width,
        "cirbench_version": __version__,
        "created_utc": _now(),
    }


def _still_current(job: SourceJob) -> bool:
    """True when the source bytes and the HR file are exactly those an earlier build recorded."""
    row = job.known_row
    if not row or row.get("source_file") != Path(job.path).name:
        return False
    hr_file = Path(job.dataset_dir) / str(row["output_file"])
    try:
        return sha256_file(job.path) == row["source_sha256"] and sha256_file(hr_file) == row["output_sha256"]
    except OSError:
        return False


def prepare_source(job: SourceJob) -> JobOutcome:
    """Validate a source, write its 8-bit RGB PNG into HR/, return its hr row (reused when nothing changed)."""
    if _still_current(job):
        return JobOutcome(label=job.path, row=dict(job.known_row or {}))
    try:
        source = load_source(job.path, max_pixels=job.max_pixels)
        relative = f"HR/{source.stem}.png"
        digest = _write_png_if_changed(Path(job.dataset_dir) / relative, encode_png(source.rgb))
    except CirbenchError as exc:
        return JobOutcome(label=job.path, error=str(exc))
    row = _source_columns(source, job.dataset) | {
        "kind": "hr",
        "task": "HR",
        "folder": "HR",
        "codec": "none",
        "output_file": relative,
        "output_sha256": digest,
    }
    return JobOutcome(label=job.path, row=row)


# One codec call at a time per process: build threads overlap only the PNG, hash and write work with the codecs
CODEC_SLOT = threading.Lock()


def _code_one(job: TaskJob, source: SourceImage) -> dict[str, Any]:
    task = job.task
    codec = create_codec(task["codec"], **job.params)
    with CODEC_SLOT:
        result = codec.roundtrip(source.rgb)
    dataset_dir = Path(job.dataset_dir)
    relative = f"{task['folder']}/{source.stem}.png"
    digest = _write_png_if_changed(dataset_dir / relative, encode_png(result.decoded))
    bitstream_file = None
    if job.keep_bitstreams:
        bitstream_file = f"bitstreams/{task['folder']}/{source.stem}{job.bitstream_suffix}"
        write_bytes_atomic(dataset_dir / bitstream_file, result.bitstream)
    return {
        "kind": "lq",
        "task": task["name"],
        "task_id": task["id"],
        "folder": task["folder"],
        "codec": task["codec"],
        "family": task["family"],
        "level": str(task["level"]),
        "params_json": json.dumps(job.params, sort_keys=True),
        "tool_versions_json": json.dumps(job.tool_versions, sort_keys=True),
        "fingerprint": job.fingerprint,
        "padded_height": result.padded_height,
        "padded_width": result.padded_width,
        "bitstream_bytes": len(result.bitstream),
        "bitstream_sha256": sha256_bytes(result.bitstream),
        "bitstream_file": bitstream_file,
        "bpp": 8.0 * len(result.bitstream) / (source.height * source.width),
        "psnr": psnr_rgb(source.rgb, result.decoded),
        "output_file": relative,
        "output_sha256": digest,
        "encode_seconds": result.encode_seconds,
        "decode_seconds": result.decode_seconds,
        "encoder_stats_json": json.dumps(result.stats, sort_keys=True),
    }


@functools.lru_cache(maxsize=2)
def _cached_source(path: str, mtime_ns: int, size: int, max_pixels: int) -> SourceImage:
    """A worker codes several tasks of one image in a row: decode it once (keyed by path, mtime and size)."""
    return load_source(path, max_pixels=max_pixels)


def _load_for_task(path: str, max_pixels: int) -> SourceImage:
    try:
        stat = Path(path).stat()
    except OSError:
        return load_source(path, max_pixels=max_pixels)  # raises the typed error naming the file
    return _cached_source(path, stat.st_mtime_ns, stat.st_size, max_pixels)


def encode_task(job: TaskJob) -> JobOutcome:
    """Code one source with one task's codec; write the decoded PNG (and the bitstream if kept)."""
    label = f"{job.source_path} [{job.task['name']}]"
    try:
        source = _load_for_task(job.source_path, job.max_pixels)
        if source.sha256 != job.source_sha256:
            raise SourceImageError(job.source_path, "the file changed during the build; rerun to pick it up")
        row = _source_columns(source, job.dataset) | _code_one(job, source)
    except CirbenchError as exc:
        where = "" if job.source_path in str(exc) else f"{job.source_path}: "
        return JobOutcome(label=label, error=f"{job.task['name']}: {where}{exc}")
    except Exception as exc:  # noqa: BLE001  (any codec, ours or a plugin's, fails one entry, never the build)
        return JobOutcome(label=label, error=f"{job.task['name']}: {job.source_path}: codec '{job.task['codec']}' "
                                            f"failed on this image ({type(exc).__name__}: {exc})")
    return JobOutcome(label=label, row=row)


ENTRIES_PER_BATCH = 3  # entries a pool worker takes at once (consecutive: usually one image's tasks of one codec)


def encode_batch(jobs: list[TaskJob]) -> list[JobOutcome]:
    """In a pool worker: code a few entries on two threads, so one entry's PNG and write overlap the next codec call
    (codec calls still take turns: CODEC_SLOT); outcomes in job order."""
    from cirbench.build.runner import overlap_executor

    with overlap_executor() as threads:
        return list(threads.map(encode_task, jobs))
