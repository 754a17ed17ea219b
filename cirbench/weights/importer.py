"""Importing weight files downloaded elsewhere into the cache, checked before anything is recorded.

A file with a published sha256 prefix must match it; one without must load safely as tensors and have the
expected key layout of its canonical name (built from cirbench's own architecture), and is then "unverified".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cirbench.errors import CirbenchError
from cirbench.fileio import write_with_atomic
from cirbench.weights.layouts import LayoutError, check_file, has_layout
from cirbench.weights.manager import WeightFile, WeightsCorrupt, cached_path, get_weight, verify_file


def import_weight(source: str | os.PathLike[str]) -> Path:
    """Copy a file downloaded elsewhere into the cache after checking its name and hash."""
    path = Path(source)
    spec = get_weight(path.name)
    if not path.is_file():
        raise CirbenchError(f"{path} is not a file")
    verify_file(spec, path)
    _check_layout(spec, path)
    target = cached_path(spec)
    write_with_atomic(target, lambda tmp: shutil.copyfile(path, tmp))
    return target


def _check_layout(spec: WeightFile, path: Path) -> None:
    """A file without a published hash is accepted only if it loads safely and has its expected key layout."""
    if spec.has_checksum:
        return  # the published sha256 prefix already identifies the file
    if not has_layout(spec.filename):
        raise WeightsCorrupt(f"{path}: no published hash and no known layout for {spec.filename}; refusing to import it")
    try:
        report = check_file(path, spec.filename)
    except LayoutError as exc:
        raise WeightsCorrupt(f"{path} was not imported: {exc}") from exc
    if not report.ok:
        raise WeightsCorrupt(f"{path} was not imported: it is not a {spec.filename} ({report.summary()})")
