"""Locates the declarative files shipped with cirbench: task sets, source manifests, samples.

In a wheel they live under ``cirbench/_data``; in a source checkout they are the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

from cirbench.errors import CirbenchError

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """The folder ``codecs`` or ``manifests`` as installed (wheel) or checked out (source)."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise CirbenchError(f"cirbench's '{name}' folder is missing from this installation ({_PACKAGE_DIR})")


def samples_dir() -> Path:
    """The small embedded sample images used by ``make demo`` and ``cirbench build`` without SOURCE."""
    return _PACKAGE_DIR / "samples"
