"""The build manifest: one Parquet row per (image, task) recording every byte and parameter of the build.

Rows are first appended to a fsync'ed JSON-lines journal, then compacted atomically into Parquet, so a killed
build loses nothing it finished. The schema (columns, types, meaning) is documented in manifests/schema/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cirbench.errors import ManifestError, OutputError
from cirbench.fileio import write_with_atomic

MANIFEST_NAME = "manifest.parquet"
JOURNAL_NAME = ".manifest.journal.jsonl"
SCHEMA_VERSION = 1

# (column, arrow type, meaning). manifests/schema/manifest.md documents the same columns (a test checks it).
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("dataset", pa.string(), "dataset name (the folder under OUT)"),
    ("kind", pa.string(), "'hr' for a ground-truth row, 'lq' for a decoded (degraded) row"),
    ("image", pa.string(), "image stem; output files are <folder>/<image>.png"),
    ("source_file", pa.string(), "source file name inside the source folder"),
    ("source_sha256", pa.string(), "sha256 of the source file's bytes"),
    ("source_bytes", pa.int64(), "size of the source file in bytes"),
    ("source_mode", pa.string(), "Pillow mode of the source (RGB, L, P, RGBA)"),
    ("source_conversion", pa.string(), "what was done to make it 8-bit RGB ('none', 'grayscale replicated to RGB', ...)"),
    ("height", pa.int64(), "image height in pixels (of the source, before any padding)"),
    ("width", pa.int64(), "image width in pixels"),
    ("task", pa.string(), "task name (MoE-DiffIR name, e.g. HEVC_47); 'HR' on hr rows"),
    ("task_id", pa.int64(), "MoE-DiffIR task id 0..20 (router gate index); null for tasks without one"),
    ("folder", pa.string(), "output folder of the task (e.g. HM_47); 'HR' on hr rows"),
    ("codec", pa.string(), "codec registry name (jpeg, webp, hevc, vvc, avc, ...); 'none' on hr rows"),
    ("family", pa.string(), "codec family of the task (JPEG, VVC, HEVC, WEBP, C_PSNR, C_SSIM, HIFIC, AVC)"),
    ("level", pa.string(), "level label of the task within its family (QF, QP, quality or mode)"),
    ("params_json", pa.string(), "JSON of every codec parameter, defaults included"),
    ("tool_versions_json", pa.string(), "JSON of the exact tool versions (libraries, binaries and their hashes)"),
    ("fingerprint", pa.string(), "sha256 of (source sha256, codec, parameters, tool versions): the rebuild key"),
    ("padded_height", pa.int64(), "height actually coded (edge-replicated padding to the codec's multiple)"),
    ("padded_width", pa.int64(), "width actually coded"),
    ("bitstream_bytes", pa.int64(), "size of the codec's bitstream in bytes (container headers included)"),
    ("bitstream_sha256", pa.string(), "sha256 of the bitstream"),
    ("bitstream_file", pa.string(), "relative path of the kept bitstream (--keep-bitstreams), else null"),
    ("bpp", pa.float64(), "8 * bitstream_bytes / (height * width), over the unpadded source size"),
    ("psnr", pa.float64(), "RGB PSNR (dB, peak 255) of the decoded image against the 8-bit RGB source"),
    ("output_file", pa.string(), "relative path of the PNG written (HR/<image>.png or <folder>/<image>.png)"),
    ("output_sha256", pa.string(), "sha256 of that PNG file"),
    ("encode_seconds", pa.float64(), "wall time of the encoder call"),
    ("decode_seconds", pa.float64(), "wall time of the decoder call"),
    ("encoder_stats_json", pa.string(), "JSON of what the encoder reported (e.g. the real QP read from its log)"),
    ("cirbench_version", pa.string(), "cirbench version that wrote the row"),
    ("created_utc", pa.string(), "UTC time the row was produced (ISO 8601)"),
]
ARROW_SCHEMA = pa.schema(
    [pa.field(name, dtype) for name, dtype, _ in COLUMNS], metadata={"cirbench_manifest_version": str(SCHEMA_VERSION)}
)
COLUMN_NAMES = [name for name, _, _ in COLUMNS]


def storable(row: dict[str, Any]) -> bool:
    """True when every text value encodes as UTF-8 (Parquet strings must; undecodable file names do not)."""
    try:
        json.dumps(row, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["kind"], row["image"], row["task"])


def normalise_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with every column present (missing ones null) and no unknown column."""
    unknown = set(row) - set(COLUMN_NAMES)
    if unknown:
        raise ManifestError(f"manifest row has unknown columns {sorted(unknown)}")
    return {name: row.get(name) for name in COLUMN_NAMES}


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    ordered = sorted((normalise_row(r) for r in rows), key=lambda r: (r["image"], r["kind"] != "hr", r["task"]))
    columns = {name: [r[name] for r in ordered] for name in COLUMN_NAMES}
    return pa.Table.from_pydict(columns, schema=ARROW_SCHEMA)


def write_manifest(dataset_dir: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write all rows to ``manifest.parquet`` atomically (deterministic row order)."""
    table = rows_to_table(rows)
    target = dataset_dir / MANIFEST_NAME
    write_with_atomic(target, lambda tmp: pq.write_table(table, tmp))
    return target


def read_manifest_table(dataset_dir: Path) -> pd.DataFrame:
    """The compacted manifest as a DataFrame; ManifestError if absent or unreadable."""
    path = dataset_dir / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"{dataset_dir} has no {MANIFEST_NAME}: is it a cirbench build? (run cirbench build)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ManifestError(f"{path} is not a readable Parquet manifest: {exc}") from exc
    missing = [c for c in COLUMN_NAMES if c not in table.column_names]
    if missing:
        raise ManifestError(f"{path} lacks columns {missing}; it was written by another tool or version")
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def load_rows(dataset_dir: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Every recorded row, Parquet first then the journal of an interrupted run (later rows win)."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    if (dataset_dir / MANIFEST_NAME).exists():
        frame = read_manifest_table(dataset_dir)
        for record in frame.to_dict(orient="records"):
            clean = {k: (None if _is_missing(v) else v) for k, v in record.items() if k in COLUMN_NAMES}
            rows[row_key(clean)] = clean
    for row in ManifestJournal(dataset_dir).read():
        rows[row_key(row)] = row
    return rows


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


class ManifestJournal:
    """Append-only JSON-lines log of finished rows, fsync'ed per row; a torn last line is ignored."""

    def __init__(self, dataset_dir: Path) -> None:
        self.path = dataset_dir / JOURNAL_NAME
        self._handle: Any = None

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(normalise_row(row), sort_keys=True)
        if not storable(row):
            raise ManifestError(f"manifest row for {row.get('image')!r} holds text that is not valid UTF-8")
        try:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115  (kept open across appends)
            self._handle.write(line + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = normalise_row(json.loads(line))
            except (json.JSONDecodeError, ManifestError):
                continue  # a line torn by a kill mid-write: that entry is simply rebuilt
            if storable(row):  # rows Parquet cannot hold (older builds journaled non-UTF-8 names) are dropped
                rows.append(row)
        return rows

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        self.close()
        if self.path.exists():
            self.path.unlink()
