"""One weights manager for the whole project: canonical files, torch-hub cache, sha256 checks, imports.

Files are downloaded into ``$TORCH_HOME/hub/checkpoints`` (so lpips, pytorch-fid, torchvision and
CompressAI share them), verified against the sha256 prefix in their names and renamed into place atomically.
"""

from __future__ import annotations

import importlib.metadata
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cirbench.errors import CirbenchError, UnknownNameError
from cirbench.fileio import sha256_file, write_with_atomic


class WeightsUnavailable(CirbenchError):
    """A weight file is not in the cache and cannot be downloaded (offline, or the host failed)."""

    def __init__(self, spec: WeightFile, reason: str) -> None:
        super().__init__(
            f"weights '{spec.filename}' are not available: {reason}. Download {spec.url} on a machine with "
            f"internet, then run: cirbench weights import /path/to/{spec.filename}"
        )
        self.spec = spec
        self.reason = reason

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.spec, self.reason))


class WeightsCorrupt(CirbenchError):
    """A weight file's sha256 does not match its canonical prefix."""


@dataclass(frozen=True)
class WeightFile:
    """A canonical pretrained file: its cache name, URL, expected sha256 prefix and what uses it."""

    filename: str
    url: str
    sha256_prefix: str
    purpose: str
    licence: str = ""
    # "<top-level package>/<path in it>" of a wheel that ships the same bytes (e.g. basicsr's NIQE parameters):
    # an installed copy is verified and used before any download
    packaged: str = ""

    @property
    def has_checksum(self) -> bool:
        """False for files whose publisher gave no hash (e.g. the HiFiC port's Google Drive files)."""
        return bool(self.sha256_prefix)

    def matches(self, digest: str) -> bool:
        """True when ``digest`` starts with the canonical prefix (always, for a file without a published hash)."""
        return not self.has_checksum or digest.startswith(self.sha256_prefix.lower())


_CATALOGUE: dict[str, WeightFile] = {}


def register_weight(spec: WeightFile) -> WeightFile:
    """Add a canonical file to the catalogue (modules that need weights call this at import time)."""
    existing = _CATALOGUE.get(spec.filename)
    if existing is not None and existing != spec:
        raise ValueError(f"weight file {spec.filename} registered twice with different specs")
    _CATALOGUE[spec.filename] = spec
    return spec


PROVIDER_GROUP = "cirbench.weights"


def catalogue() -> dict[str, WeightFile]:
    """Every registered canonical file, after loading the providers of the entry-point group ``cirbench.weights``.

    A provider is a module that registers files when imported, or a callable that imports them (the codec,
    metric and model registries' ``names``); the weights package itself imports none of them.
    """
    for ep in importlib.metadata.entry_points(group=PROVIDER_GROUP):
        try:
            provider = ep.load()
        except (ImportError, AttributeError):
            continue  # a broken third-party plugin; its registry reports it by name when used
        if callable(provider):
            provider()
    return dict(sorted(_CATALOGUE.items()))


def get_weight(filename: str) -> WeightFile:
    files = catalogue()
    if filename not in files:
        raise UnknownNameError(f"unknown weight file '{filename}' (known: {', '.join(files)})")
    return files[filename]


def cache_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (torch's own default resolution), created on demand."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(spec: WeightFile) -> Path:
    return cache_dir() / spec.filename


def verify_file(spec: WeightFile, path: Path) -> str:
    """sha256 of ``path``; WeightsCorrupt when it does not start with the canonical prefix."""
    digest = sha256_file(path)
    if not spec.matches(digest):
        raise WeightsCorrupt(
            f"{path} has sha256 {digest[:16]}..., expected a digest starting with {spec.sha256_prefix}: "
            "the file is corrupt, truncated or not the canonical one"
        )
    return digest


class _DownloadFailed(Exception):
    """The host could not be reached or broke off (kept apart from OSErrors of writing the file)."""


def _download(spec: WeightFile, target: Path, progress: Callable[[int, int], None] | None) -> None:
    def fetch(tmp_path: str) -> None:
        with open(tmp_path, "wb") as out:
            try:
                response = urllib.request.urlopen(spec.url, timeout=60)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                raise _DownloadFailed(getattr(exc, "reason", exc)) from exc
            with response:
                total = int(response.headers.get("Content-Length") or 0)
                done = 0
                while block := _read_block(response):
                    out.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total)
        verify_file(spec, Path(tmp_path))

    write_with_atomic(target, fetch)


def _read_block(response) -> bytes:
    try:
        return response.read(1 << 20)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise _DownloadFailed(exc) from exc


def ensure_weight(filename: str, download: bool = True, progress: Callable[[int, int], None] | None = None) -> Path:
    """Path of a verified canonical file: from the cache, else downloaded (if allowed) and verified."""
    spec = get_weight(filename)
    target = cached_path(spec)
    if target.exists():
        verify_file(spec, target)
        return target
    local = packaged_copy(spec)
    if local is not None:
        return local
    if not download or os.environ.get("CIRBENCH_OFFLINE") == "1":
        raise WeightsUnavailable(spec, f"not in the cache {target.parent} and downloads are off")
    try:
        _download(spec, target, progress)
    except _DownloadFailed as exc:
        raise WeightsUnavailable(spec, f"download failed ({exc})") from exc
    return target


def packaged_copy(spec: WeightFile) -> Path | None:
    """The verified file inside an installed wheel that ships it (found without importing the package), or None."""
    if not spec.packaged:
        return None
    import importlib.util

    package, _, inner = spec.packaged.partition("/")
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    roots = list(found.submodule_search_locations or []) if found is not None else []
    for root in roots:
        path = Path(root) / inner
        if path.is_file():
            verify_file(spec, path)
            return path
    return None


def weight_status(spec: WeightFile) -> str:
    """'ok', 'unverified' (present, no published hash to check), 'missing' or 'corrupt' for the cached copy."""
    path = cached_path(spec)
    if not path.exists():
        return "missing"
    try:
        verify_file(spec, path)
    except WeightsCorrupt:
        return "corrupt"
    if not spec.has_checksum:
        return "unverified"
    return "ok"
