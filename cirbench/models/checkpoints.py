"""Safe checkpoint I/O: tensors only (safetensors or torch.load with weights_only=True), strict key checks.

Nothing in a checkpoint is ever executed: a file holding arbitrary pickled objects is refused.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cirbench.errors import CirbenchError
from cirbench.fileio import write_with_atomic
from cirbench.weights.sniff import not_a_checkpoint, refuse_if_not_a_checkpoint, what_file_is


class CheckpointError(CirbenchError):
    """A checkpoint file is missing, unreadable or holds no tensors."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds pickled objects other than tensors and plain containers; it was not loaded."""


class StrictLoadError(CheckpointError):
    """A state dict does not match a module: missing, unexpected or mis-shaped keys."""


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict itself, or the one inside a common container: the same unwrapping as `weights check`."""
    from cirbench.weights.layouts import LayoutError, state_at

    try:
        return dict(state_at(obj, (), path))
    except LayoutError as exc:
        raise CheckpointError(str(exc)) from None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or torch checkpoint, loaded on CPU without executing anything from the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({what_file_is(path) or exc})") from exc
    try:
        refuse_if_not_a_checkpoint(path)
    except CirbenchError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise CheckpointError(not_a_checkpoint(path, exc)) from exc
        raise UnsafeCheckpointError(
            f"{path} holds pickled Python objects besides tensors, so it was refused (loading it could run "
            "arbitrary code). Re-save it as tensors only, e.g. torch.save(model.state_dict(), ...) or safetensors."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(not_a_checkpoint(path, exc)) from exc
    return _unwrap(obj, path)


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write tensors as safetensors, atomically (temporary file renamed into place)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    write_with_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` into ``module``; StrictLoadError naming every missing, unexpected or mis-shaped key, in the
    words of `weights check` (one comparison for both)."""
    from cirbench.weights.layouts import Layout, compare, specs_of

    report = compare(Layout(specs_of(module.state_dict()), any_float=True), specs_of(state))
    if not report.ok:
        raise StrictLoadError(f"state dict does not match {type(module).__name__}: {report.summary()}")
    module.load_state_dict(dict(state), strict=True)
