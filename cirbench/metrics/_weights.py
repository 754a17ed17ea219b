"""Where a metric's network weights come from: the verified canonical file, an explicit path, or a state_dict.

Every source is loaded with ``torch.load(weights_only=True)`` and described for the result's provenance.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cirbench.fileio import sha256_file
from cirbench.metrics._base import MetricError
from cirbench.weights.manager import ensure_weight, get_weight

WeightsSource = None | str | os.PathLike | Mapping[str, torch.Tensor]


def load_weights(
    source: WeightsSource, canonical: str, download: bool = True
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, provenance) from ``source``; None means the canonical file through the weights manager."""
    if source is None:
        path = ensure_weight(canonical, download=download)
        spec = get_weight(canonical)
        return _torch_load(path), {"weights": canonical, "weights_sha256_prefix": spec.sha256_prefix}
    if isinstance(source, Mapping):
        return dict(source), {"weights": "in-memory state_dict"}
    path = Path(source)
    if not path.is_file():
        raise MetricError(f"weights file {path} does not exist")
    return _torch_load(path), {"weights": str(path), "weights_sha256": sha256_file(path)}


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError) as exc:
        raise MetricError(f"cannot load weights from {path}: {exc}") from exc
    if not isinstance(state, Mapping):
        raise MetricError(f"{path} does not hold a state_dict (got {type(state).__name__})")
    return dict(state)
