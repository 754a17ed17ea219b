"""Image-quality metrics of cirbench: a registry of named metrics and the create_metric factory.

Each metric lives in its own module and registers its class with ``@METRICS.register(name)``.
"""

from __future__ import annotations

from typing import Any

import torch

from cirbench.metrics._base import DistributionMetric, Metric, MetricError, MetricInfo, PairedMetric
from cirbench.registry import Registry

METRICS: Registry[type[Metric]] = Registry("metric", package="cirbench.metrics", group="cirbench.metrics")


def create_metric(name: str, device: str | torch.device = "cpu", **options: Any) -> Metric:
    """Build the metric registered as ``name`` on ``device`` with the given options."""
    cls = METRICS.get(name)
    try:
        return cls(device=device, **options)
    except TypeError as exc:
        raise MetricError(f"metric '{name}': {exc}") from exc


def metric_infos() -> dict[str, MetricInfo]:
    """Name -> MetricInfo of every registered metric."""
    return {name: METRICS.get(name).info for name in METRICS.names()}


__all__ = [
    "METRICS",
    "DistributionMetric",
    "Metric",
    "MetricError",
    "MetricInfo",
    "PairedMetric",
    "create_metric",
    "metric_infos",
]
