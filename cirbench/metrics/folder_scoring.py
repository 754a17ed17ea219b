"""Scoring two folders of images paired by file stem with a metric profile: per-image rows plus a summary.

Used by ``cirbench score``; missing pairs and size mismatches are reported all at once before any metric runs.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cirbench.errors import CirbenchError
from cirbench.fileio import declared_bits_per_sample, write_text_atomic
from cirbench.metrics import MetricError, MetricUnavailable, create_metric
from cirbench.metrics.aggregate import CONVENTION, count_inf, set_mean
from cirbench.metrics.profiles import DEFAULT_PROFILE, MetricSpec, flatten_set_result, get_profile, select_specs
from cirbench.weights.manager import WeightsUnavailable

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class PairingError(CirbenchError):
    """Two folders cannot be scored pair by pair (missing stems, duplicate stems, different sizes)."""


@dataclass(frozen=True)
class ImagePair:
    stem: str
    ref: Path
    test: Path


@dataclass
class ScoreReport:
    """Per-image rows (image + paired results), whole-set summary and how every metric was computed."""

    profile: str
    rows: list[dict[str, Any]]
    summary: dict[str, float | int]
    metrics: dict[str, dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise PairingError(f"{folder} is not a folder")
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(path.stem, []).append(path)
    duplicates = {stem: paths for stem, paths in found.items() if len(paths) > 1}
    if duplicates:
        listed = "; ".join(", ".join(p.name for p in paths) for paths in duplicates.values())
        raise PairingError(f"{folder} has several images with the same stem: {listed}")
    return {stem: paths[0] for stem, paths in found.items()}


def _listing(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... (+{len(names) - limit} more)" if len(names) > limit else "")


def pair_images(ref_dir: str | Path, test_dir: str | Path) -> list[ImagePair]:
    """Pairs by file stem; PairingError naming every unpaired stem or size mismatch."""
    refs, tests = _images_by_stem(Path(ref_dir)), _images_by_stem(Path(test_dir))
    only_ref = sorted(set(refs) - set(tests))
    only_test = sorted(set(tests) - set(refs))
    problems = []
    if only_ref:
        problems.append(f"{len(only_ref)} without a test image: {_listing(only_ref)}")
    if only_test:
        problems.append(f"{len(only_test)} without a reference image: {_listing(only_test)}")
    if not refs or not tests:
        problems.append(f"no images found ({len(refs)} in {ref_dir}, {len(tests)} in {test_dir})")
    pairs = [ImagePair(stem, refs[stem], tests[stem]) for stem in sorted(set(refs) & set(tests))]
    mismatched = []
    for pair in pairs:
        with Image.open(pair.ref) as ref_image, Image.open(pair.test) as test_image:
            if ref_image.size != test_image.size:
                mismatched.append(
                    f"{pair.stem} ({ref_image.size[0]}x{ref_image.size[1]} vs "
                    f"{test_image.size[0]}x{test_image.size[1]})"
                )
    if mismatched:
        problems.append(f"{len(mismatched)} with different sizes: {_listing(mismatched)}")
    if problems:
        raise PairingError(f"cannot pair {ref_dir} with {test_dir}: " + "; ".join(problems))
    return pairs


@dataclass
class _Notes:
    """What scoring did beyond the plain case, reported once per kind: dropped alpha, per-image metric skips."""

    alpha_dropped: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # result name -> images
    reasons: dict[str, str] = field(default_factory=dict)

    def messages(self) -> list[str]:
        lines = []
        if self.alpha_dropped:
            lines.append(f"fully opaque alpha dropped from {len(self.alpha_dropped)} image(s): {_listing(self.alpha_dropped)}")
        for name, images in self.skipped.items():
            lines.append(f"{name} skipped for {len(images)} image(s) ({self.reasons[name]}): {_listing(images)}")
        return lines


def load_image(path: Path, notes: _Notes | None = None) -> torch.Tensor:
    """[1,3,H,W] float32 in [0,1] from an 8-bit image file (grey images are repeated over RGB).

    Files with more than 8 bits per sample and images with transparent pixels are refused (the protocol scores
    8-bit opaque RGB); a fully opaque alpha channel is dropped and noted.
    """
    with Image.open(path) as image:
        if image.mode not in ("RGB", "L", "P", "RGBA", "LA"):
            raise PairingError(f"{path}: unsupported image mode {image.mode} (8-bit RGB or grey expected)")
        bits = declared_bits_per_sample(image, path.read_bytes()[:64])
        if bits > 8:
            raise PairingError(f"{path}: {bits} bits per sample; cirbench scores 8-bit images (convert it first)")
        if image.mode in ("RGBA", "LA") or "transparency" in image.info:
            alpha = np.asarray(image.convert("RGBA").getchannel("A"))
            if alpha.min() < 255:
                raise PairingError(f"{path}: transparent pixels; scores are defined on opaque RGB (flatten it first)")
            if notes is not None:
                notes.alpha_dropped.append(path.name)
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def _score_one(pair: ImagePair, ref: torch.Tensor, test: torch.Tensor, built, notes: _Notes) -> dict[str, Any]:
    """One row of paired values; a metric that cannot score this pair (e.g. MS-SSIM under 161 px) is left empty."""
    row: dict[str, Any] = {"image": pair.stem}
    for spec, metric in built:
        if metric.info.kind != "paired":
            metric.update(ref, test)
            continue
        try:
            row[spec.result_name] = float(metric(ref, test)[0])
        except MetricError as exc:
            row[spec.result_name] = float("nan")
            notes.skipped.setdefault(spec.result_name, []).append(pair.stem)
            notes.reasons.setdefault(spec.result_name, str(exc))
    return row


def _build(
    specs: Sequence[MetricSpec], device: str, strict: bool, skipped: dict[str, str]
) -> list[tuple[MetricSpec, Any]]:
    built = []
    for spec in specs:
        try:
            built.append((spec, create_metric(spec.metric, device=device, **spec.options)))
        except (WeightsUnavailable, MetricUnavailable) as exc:
            if strict:
                raise
            skipped[spec.result_name] = str(exc)
    return built


def score_pairs(
    ref_dir: str | Path,
    test_dir: str | Path,
    profile: str = DEFAULT_PROFILE,
    metrics: Sequence[str] | None = None,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    strict: bool = False,
) -> ScoreReport:
    """Score every stem-paired image; metrics whose weights are unavailable are skipped unless ``strict``."""
    pairs = pair_images(ref_dir, test_dir)
    skipped: dict[str, str] = {}
    built = _build(select_specs(profile, metrics), device, strict, skipped)
    rows, notes = [], _Notes()
    for done, pair in enumerate(pairs, start=1):
        ref, test = load_image(pair.ref, notes).to(device), load_image(pair.test, notes).to(device)
        rows.append(_score_one(pair, ref, test, built, notes))
        if progress is not None:
            progress(done, len(pairs))
    summary, messages = _summarise(built, rows)
    messages = notes.messages() + messages
    described = {
        spec.result_name: {
            "metric": spec.metric,
            "kind": metric.info.kind,
            "higher_better": metric.info.higher_better,
            "options": metric.options(),
        }
        for spec, metric in built
    }
    return ScoreReport(get_profile(profile).name, rows, summary, described, skipped, messages)


def _summarise(built: list[tuple[MetricSpec, Any]], rows: list[dict[str, Any]]):
    """(summary, warning messages): means of per-image values and whole-set values of distribution metrics."""
    summary: dict[str, float | int] = {"n_pairs": len(rows)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for spec, metric in built:
            if metric.info.kind == "paired":
                values = [row[spec.result_name] for row in rows if not math.isnan(row[spec.result_name])]
                summary[spec.result_name] = set_mean(values)
                summary[f"{spec.result_name}_n"] = len(values)
                if count_inf(values):
                    summary[f"{spec.result_name}_n_inf"] = count_inf(values)
            else:
                summary.update(flatten_set_result(spec.result_name, spec.metric, metric.compute()))
    return summary, [str(warning.message) for warning in caught]


def write_report(report: ScoreReport, csv_path: str | Path) -> Path:
    """Per-image CSV at ``csv_path`` and ``<stem>.summary.json`` beside it (both written atomically)."""
    csv_path = Path(csv_path)
    columns = ["image"] + [name for name, info in report.metrics.items() if info["kind"] == "paired"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    write_text_atomic(csv_path, buffer.getvalue())
    summary_path = csv_path.with_suffix(".summary.json")
    payload = {
        "profile": report.profile,
        "mean_convention": CONVENTION,
        "summary": report.summary,
        "metrics": report.metrics,
        "skipped": report.skipped,
        "warnings": report.warnings,
    }
    write_text_atomic(summary_path, json.dumps(_json_safe(payload), indent=2, allow_nan=False) + "\n")
    return summary_path


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def _json_safe(value: Any) -> Any:
    """Non-finite floats as the strings 'inf', '-inf', 'nan' (strict JSON); other non-JSON values as text."""
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
