"""Reading PyTorch Lightning ``.ckpt`` files without running anything from them.

Only tensors and plain containers are rebuilt; the classes a Lightning checkpoint names besides them (callback
keys, hyper-parameter containers, numpy scalars) must be on an allow-list and come back as inert placeholders.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from cirbench.errors import CirbenchError
from cirbench.weights.sniff import not_a_checkpoint, refuse_if_not_a_checkpoint

# The objects Lightning and OmegaConf leave in training checkpoints (never instantiated here): whole packages
# (a name ending in ".") and single qualified names, matched whole: "builtins.set" admits no "builtins.setattr".
ALLOWED_PREFIXES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "omegaconf.", "numpy.dtypes.")
ALLOWED_NAMES = frozenset({
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype", "typing.Any",
    "collections.defaultdict", "builtins.set",
})  # fmt: skip


def allowed(name: str) -> bool:
    """Whether the global ``name`` (module.qualname) may load as an inert placeholder."""
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


class UnsafeCheckpoint(CirbenchError):
    """A checkpoint names Python objects outside the allow-list; it was refused unread."""


class Placeholder:
    """Stands in for an allow-listed class: accepts any arguments and state, does nothing, keeps its name."""

    qualified_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<placeholder for {self.qualified_name}>"


def _placeholder(name: str) -> type:
    return type("Placeholder", (Placeholder,), {"qualified_name": name})


def unsafe_names(path: Path) -> list[str]:
    """The globals a torch checkpoint names that torch's tensors-only unpickler does not allow by itself."""
    import torch

    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (RuntimeError, ValueError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise CirbenchError(not_a_checkpoint(path, exc)) from exc


def _legacy_load(path: Path, map_location: str) -> Any:
    """Files not in torch's zip format (old torch.save, bare pickles): tensors-only unpickling, no placeholders."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise UnsafeCheckpoint(f"{path} holds pickled Python objects besides tensors; it was refused unread") from exc
        raise CirbenchError(not_a_checkpoint(path, exc)) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CirbenchError(not_a_checkpoint(path, exc)) from exc


def safe_load(path: str | Path, map_location: str = "cpu") -> Any:
    """torch.load(weights_only=True) where allow-listed Lightning/OmegaConf names load as placeholders."""
    import torch

    path = Path(path)
    refuse_if_not_a_checkpoint(path)
    if not zipfile.is_zipfile(path):
        return _legacy_load(path, map_location)
    names = unsafe_names(path)
    refused = [name for name in names if not allowed(name)]
    if refused:
        raise UnsafeCheckpoint(
            f"{path} names Python objects that are not weights ({', '.join(refused[:5])}); it was refused unread, "
            "since loading it could run code"
        )
    stubs = [(_placeholder(name), name) for name in names]
    with torch.serialization.safe_globals(stubs):
        return torch.load(path, map_location=map_location, weights_only=True, mmap=map_location != "meta")
