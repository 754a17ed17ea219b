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


EXTERNAL_CACHES = ("pyiqa", "torch-hub")  # where pyiqa looks for its own files, and torchvision's (hub/checkpoints)
TENSOR_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def external_cache_dir(cache: str) -> Path:
    import torch.hub

    if cache not in EXTERNAL_CACHES:
        raise CirbenchError(f"cache must be one of {', '.join(EXTERNAL_CACHES)}, got '{cache}'")
    return Path(torch.hub.get_dir()) / ("pyiqa" if cache == "pyiqa" else "checkpoints")


def import_external(source: str | os.PathLike[str], cache: str) -> Path:
    """Copy a file another package downloads itself (pyiqa's, torchvision's) into that package's cache, after the
    checks that are possible: the sha256 prefix its name carries (torch hub's ``name-<hash>.ext``) and, for a
    checkpoint, that it holds tensors only."""
    from cirbench.fileio import sha256_file
    from cirbench.metrics.pyiqa_bridge import HASH_IN_NAME
    from cirbench.weights.layouts import file_tensors

    path = Path(source)
    if not path.is_file():
        raise CirbenchError(f"{path} is not a file")
    found = HASH_IN_NAME.search(path.name)
    if found and not sha256_file(path).startswith(found.group(1)):
        raise WeightsCorrupt(f"{path}: its sha256 does not start with {found.group(1)}, the prefix its name carries")
    if path.suffix in TENSOR_SUFFIXES:
        try:
            file_tensors(path)
        except LayoutError as exc:
            raise WeightsCorrupt(f"{path} was not imported: {exc}") from exc
    target = external_cache_dir(cache) / path.name
    write_with_atomic(target, lambda tmp: shutil.copyfile(path, tmp))
    return target
