"""``weights convert``: a canonical file, checked against its layout, rewritten as safetensors (tensors only).

A component may register its own converter for a file (extra checks, keys to drop); the default keeps the
layout's tensors and drops what the layout tolerates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cirbench.errors import CirbenchError

Converter = Callable[[Path, Path], dict[str, Any]]
_CONVERTERS: dict[str, Converter] = {}


def register_converter(filename: str, converter: Converter) -> None:
    _CONVERTERS[filename] = converter


def default_converter(name: str) -> Converter:
    def convert(path: Path, out: Path) -> dict[str, Any]:
        """Read ``path`` once (tensors only), check it against the layout of ``name``, write what the layout holds."""
        from cirbench.fileio import sha256_file
        from cirbench.models.checkpoints import save_state_dict
        from cirbench.weights.layouts import compare, expected_layout, specs_of, state_at
        from cirbench.weights.lightning import safe_load

        layout = expected_layout(name)
        state = state_at(safe_load(path), layout.container, path)
        report = compare(layout, specs_of(state))
        if not report.ok:
            raise CirbenchError(f"{path} does not match {name}: {report.summary()}")
        keep = {k: v for k, v in state.items() if k not in report.tolerated}
        digest = sha256_file(path)
        save_state_dict(keep, out, metadata={"cirbench_converted_from": path.name, "source_sha256": digest})
        return {"file": str(path), "sha256": digest, "tolerated_keys": report.tolerated}

    return convert


def convert_file(path: str | Path, out: str | Path | None = None, name: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Convert ``path`` (checked as canonical file ``name``, default its own name); returns the output and a report."""
    from cirbench.weights.layouts import has_layout

    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise CirbenchError(f"{path} is not a file")
    if not has_layout(name):
        raise CirbenchError(f"no expected layout is known for '{name}': pass --as with a canonical file name")
    target = Path(out) if out else path.with_suffix(".safetensors")
    if target.resolve() == path.resolve():
        raise CirbenchError(f"{path} is already {target.name}: choose another --out")
    report = _CONVERTERS.get(name, default_converter(name))(path, target)
    return target, report
