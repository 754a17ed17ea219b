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

_CONTAINER_KEYS = ("state_dict", "params_ema", "params", "model", "module", "net", "network")


class CheckpointError(CirbenchError):
    """A checkpoint file is missing, unreadable or holds no tensors."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holds pickled objects other than tensors and plain containers; it was not loaded."""


class StrictLoadError(CheckpointError):
    """A state dict does not match a module: missing, unexpected or mis-shaped keys."""


def _tensor_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj):
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    return None


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict itself, or the one inside a common container ({"state_dict": ...}, {"params": ...})."""
    direct = _tensor_dict(obj)
    if direct is not None:
        return direct
    if isinstance(obj, Mapping):
        for key in _CONTAINER_KEYS:
            inner = _tensor_dict(obj.get(key))
            if inner is not None:
                return inner
    raise CheckpointError(
        f"{path}: no state dict of tensors found (top level or under one of {', '.join(_CONTAINER_KEYS)})"
    )


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
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({str(exc).splitlines()[0]})") from exc
        raise UnsafeCheckpointError(
            f"{path} holds pickled Python objects besides tensors, so it was refused (loading it could run "
            "arbitrary code). Re-save it as tensors only, e.g. torch.save(model.state_dict(), ...) or safetensors."
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({exc})") from exc
    return _unwrap(obj, path)


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write tensors as safetensors, atomically (temporary file renamed into place)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    write_with_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_strict(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` into ``module``; StrictLoadError naming every missing, unexpected or mis-shaped key."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                shown = ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8})" if len(keys) > 8 else "")
                parts.append(f"{label} keys ({len(keys)}): {shown}")
        raise StrictLoadError(f"state dict does not match {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(dict(state), strict=True)
