"""Expected key layouts of the canonical weight files, and safe reads of a local file's layout to compare.

A component registers, next to its WeightFile, a builder that makes its architecture on the meta device; the
layout is that module's state dict (key, shape, dtype). Files are read with weights_only / safetensors only.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirbench.errors import CirbenchError, UnknownNameError
from cirbench.weights.sniff import not_a_checkpoint, what_file_is


class LayoutError(CirbenchError):
    """A weight file cannot be read safely, or its keys do not match the expected layout."""


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]  # -1: any size in that dimension (data-dependent tables such as CDF lengths)
    dtype: str

    def admits(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.shape) and all(e in (-1, g) for e, g in zip(self.shape, shape, strict=True))

    def as_record(self, key: str) -> dict[str, Any]:
        return {"key": key, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Layout:
    """The tensors a file must hold at ``container`` (a path of dict keys; empty = the top level)."""

    tensors: dict[str, TensorSpec]
    container: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()  # keys the file may hold or lack (e.g. training-only tensors)
    optional_prefixes: tuple[str, ...] = ()  # whole key families the file may hold (e.g. a Lightning ``loss.*``)
    any_float: bool = False  # float16/bfloat16/float32 all accepted where float32 is expected (cast on load)
    rename: Callable[[str], str] | None = None  # maps the file's key names onto ours before comparing
    note: str = ""

    def as_records(self) -> list[dict[str, Any]]:
        return [spec.as_record(key) for key, spec in sorted(self.tensors.items())]


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def on_cpu(builder: Callable[[], Layout]) -> Callable[[], Layout]:
    """Wrap a builder whose architecture cannot be made on the meta device (e.g. CompressAI's GDN init)."""

    def build() -> Layout:
        import torch

        with torch.device("cpu"):
            return builder()

    return build


def module_layout(module: Any, shape_of: Callable[[str, tuple[int, ...]], tuple[int, ...]] | None = None,
                  **options: Any) -> Layout:  # fmt: skip
    """The layout of ``module.state_dict()`` (build the module under ``torch.device('meta')``); ``shape_of`` may
    replace a key's shape, e.g. with -1 for a data-dependent dimension."""
    tensors = {}
    for key, value in module.state_dict().items():
        shape = tuple(int(s) for s in value.shape)
        tensors[key] = TensorSpec(shape_of(key, shape) if shape_of else shape, _dtype_name(value.dtype))
    return Layout(tensors=tensors, **options)


_BUILDERS: dict[str, Callable[[], Layout]] = {}


def register_layout(filename: str, builder: Callable[[], Layout]) -> None:
    """Declare how to build the expected layout of the canonical file ``filename`` (called at import time)."""
    _BUILDERS[filename] = builder


def expected_layout(filename: str) -> Layout:
    """The expected layout of a canonical file, built on the meta device; UnknownNameError if none is known."""
    from cirbench.weights.manager import catalogue

    catalogue()  # imports every provider, which registers its layouts
    if filename not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS))
        raise UnknownNameError(f"no expected layout is known for '{filename}' (known: {known})")
    import torch

    with torch.device("meta"):  # architecture only: no memory, no random init (a builder may choose the CPU)
        return _BUILDERS[filename]()


def has_layout(filename: str) -> bool:
    from cirbench.weights.manager import catalogue

    catalogue()
    return filename in _BUILDERS


def _load_safely(path: Path) -> Any:
    if path.suffix == ".npz":  # numpy arrays only: allow_pickle stays off
        import zipfile

        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as arrays:
                return {key: TensorSpec(tuple(arrays[key].shape), str(arrays[key].dtype)) for key in arrays.files}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise LayoutError(f"{path}: not a readable numpy .npz of plain arrays ({exc})") from exc
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                return {
                    key: TensorSpec(tuple(handle.get_slice(key).get_shape()), _SAFETENSORS_DTYPES.get(
                        handle.get_slice(key).get_dtype(), handle.get_slice(key).get_dtype().lower()))
                    for key in handle.keys()
                }  # fmt: skip
        except (SafetensorError, OSError) as exc:
            raise LayoutError(f"{path}: not a readable safetensors file ({what_file_is(path) or exc})") from exc
    from cirbench.weights.lightning import UnsafeCheckpoint, safe_load

    try:
        return safe_load(path, map_location="meta")  # tensors, plus inert placeholders for Lightning's own objects
    except UnsafeCheckpoint as exc:
        raise LayoutError(str(exc)) from exc
    except CirbenchError as exc:
        raise LayoutError(str(exc)) from exc
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise LayoutError(f"{path} holds pickled Python objects besides tensors; it was refused unread") from exc
        raise LayoutError(not_a_checkpoint(path, exc)) from exc
    except Exception as exc:  # noqa: BLE001  (garbage bytes make the tensors-only unpickler fail in many ways)
        raise LayoutError(not_a_checkpoint(path, exc)) from exc


_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip


def _spec_of(value: Any) -> TensorSpec | None:
    if isinstance(value, TensorSpec):
        return value
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None or not hasattr(value, "dim"):
        return None
    return TensorSpec(tuple(int(s) for s in shape), _dtype_name(dtype))


WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model", "module", "net", "network")  # tried in this order


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(_spec_of(v) is not None for v in obj.values())


def state_at(obj: Any, container: Iterable[str], path: str | Path) -> dict[str, Any]:
    """The dict of tensors at ``container`` in a loaded file (or at its top level when the tensors sit there, as
    in a converted or re-saved file); with no container, the top level or the first of WRAPPER_KEYS that holds
    one. The one unwrapping of `weights check`, `weights import` and every model's checkpoint loading."""
    container = tuple(container)
    if container and isinstance(obj, Mapping) and container[0] not in obj and _is_tensor_dict(obj):
        container = ()
    if not container and isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        found = next((key for key in WRAPPER_KEYS if _is_tensor_dict(obj.get(key))), None)
        if found is None:
            top = ", ".join(sorted(str(k) for k in obj)[:8]) or "none"
            raise LayoutError(f"{path}: no state dict of tensors at the top level or under one of "
                              f"{', '.join(WRAPPER_KEYS)} (top-level keys: {top})")  # fmt: skip
        container = (found,)
    for key in container:
        if not isinstance(obj, Mapping) or key not in obj:
            raise LayoutError(f"{path}: no '{key}' entry where the state dict should be")
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise LayoutError(f"{path}: does not hold a dict of tensors (found {type(obj).__name__})")
    not_tensors = sorted(str(key) for key, value in obj.items() if _spec_of(value) is None)
    if not_tensors:
        raise LayoutError(f"{path}: entries that are not tensors: {', '.join(not_tensors[:5])}")
    return {str(key): value for key, value in obj.items()}


def specs_of(state: Mapping[str, Any]) -> dict[str, TensorSpec]:
    """(shape, dtype) of every tensor (or meta tensor, or TensorSpec) of a state dict."""
    return {key: spec for key, spec in ((k, _spec_of(v)) for k, v in state.items()) if spec is not None}


def file_tensors(path: str | Path, container: Iterable[str] = ()) -> dict[str, TensorSpec]:
    """(shape, dtype) of every tensor at ``container`` in a file, read without executing or loading data."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path} is not a file")
    return specs_of(state_at(_load_safely(path), container, path))


@dataclass
class LayoutReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    tolerated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """The one wording of a key mismatch, for `weights check`, `weights import` and strict model loading."""
        parts = []
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected), ("mis-shaped", self.mismatched)):
            if keys:
                shown = ", ".join(keys[:8]) + (f" ... (+{len(keys) - 8})" if len(keys) > 8 else "")
                parts.append(f"{label} keys ({len(keys)}): {shown}")
        return "; ".join(parts) or "layout matches"


_FLOATS = {"float32", "float16", "bfloat16"}


def compare(layout: Layout, found: Mapping[str, TensorSpec]) -> LayoutReport:
    """Missing, unexpected and mis-shaped (or mis-typed) keys of ``found`` against ``layout``."""
    renamed = {(layout.rename(k) if layout.rename else k): v for k, v in found.items()}
    report = LayoutReport()
    for key, spec in sorted(layout.tensors.items()):
        if key not in renamed:
            if key not in layout.optional:
                report.missing.append(key)
            continue
        got = renamed[key]
        same_dtype = got.dtype == spec.dtype or (layout.any_float and {got.dtype, spec.dtype} <= _FLOATS)
        if not spec.admits(got.shape) or not same_dtype:
            report.mismatched.append(f"{key} {_describe(got)} (expected {_describe(spec)})")
    for key in sorted(set(renamed) - set(layout.tensors)):
        tolerated = key in layout.optional or key.startswith(layout.optional_prefixes)
        (report.tolerated if tolerated else report.unexpected).append(key)
    return report


def _describe(spec: TensorSpec) -> str:
    return f"{['*' if d == -1 else d for d in spec.shape]} {spec.dtype}"


def check_file(path: str | Path, name: str | None = None) -> LayoutReport:
    """Compare a local file with the expected layout of canonical file ``name`` (default: the file's own name)."""
    path = Path(path)
    layout = expected_layout(name or path.name)
    return compare(layout, file_tensors(path, layout.container))
