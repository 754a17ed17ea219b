"""Image-quality metrics of cirbench: a registry of named metrics and the create_metric factory.

Each metric lives in its own module and registers its class with ``@METRICS.register(name)``.
"""

from __future__ import annotations

from typing import Any

import torch

from cirbench.metrics._base import (
    DistributionMetric,
    Metric,
    MetricError,
    MetricInfo,
    MetricUnavailable,
    NoReferenceMetric,
    PairedMetric,
)
from cirbench.registry import Registry

METRICS: Registry[type[Metric]] = Registry("metric", package="cirbench.metrics", group="cirbench.metrics")


def create_metric(name: str, device: str | torch.device = "cpu", **options: Any) -> Metric:
    """Build the metric registered as ``name`` (or pyiqa's ``pyiqa:<name>``) on ``device`` with the given options."""
    from cirbench.metrics.pyiqa_bridge import PREFIX, PyiqaMetric, is_pyiqa_name

    if is_pyiqa_name(name):
        return PyiqaMetric(name[len(PREFIX) :], device=device, **options)
    cls = METRICS.get(name)
    try:
        return cls(device=device, **options)
    except TypeError as exc:
        raise MetricError(f"metric '{name}': {exc}") from exc


def metric_info(name: str) -> MetricInfo:
    """The metadata of a registered metric or of ``pyiqa:<name>`` (read from pyiqa's configs; nothing is built)."""
    from cirbench.metrics.pyiqa_bridge import PREFIX, is_pyiqa_name, pyiqa_info

    if is_pyiqa_name(name):
        return pyiqa_info(name[len(PREFIX) :])
    return METRICS.get(name).info


def metric_infos() -> dict[str, MetricInfo]:
    """Name -> MetricInfo of every registered metric."""
    return {name: METRICS.get(name).info for name in METRICS.names()}


__all__ = [
    "METRICS",
    "DistributionMetric",
    "Metric",
    "MetricError",
    "MetricInfo",
    "MetricUnavailable",
    "NoReferenceMetric",
    "PairedMetric",
    "create_metric",
    "metric_info",
    "metric_infos",
]
