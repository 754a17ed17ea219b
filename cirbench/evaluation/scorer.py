"""Scoring restored batches with a metric profile: per-image values, per-task set metrics, skipped metrics.

Metrics whose weights are unavailable offline are skipped once, with the reason kept for the run record.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from cirbench.weights.manager import WeightsUnavailable


@dataclass
class ScoredMetric:
    result_name: str
    metric_name: str
    metric: Any  # cirbench.metrics.Metric
    kind: str


@dataclass
class Scorer:
    """The metrics of one profile on one device; ``skipped`` maps result names to the reason."""

    profile_name: str
    device: str
    warn: Callable[[str], None] = lambda message: None
    metrics: list[ScoredMetric] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    image_skips: dict[str, int] = field(default_factory=dict)  # result name -> images a metric could not score
    profile_description: str = ""
    only: tuple[str, ...] = ()  # result or metric names chosen beside the profile (evaluate --metrics); () = all

    def __post_init__(self) -> None:
        from cirbench.metrics import MetricUnavailable, create_metric
        from cirbench.metrics.profiles import get_profile, select_specs

        profile = get_profile(self.profile_name)
        self.profile_name = profile.name
        self.profile_description = getattr(profile, "description", "")
        unavailable: dict[str, list[str]] = {}  # reason -> result names (one warning per missing file)
        for spec in select_specs(profile.name, self.only):
            try:
                metric = create_metric(spec.metric, device=self.device, **dict(spec.options))
            except (WeightsUnavailable, MetricUnavailable) as exc:
                self.skipped[spec.result_name] = str(exc)
                unavailable.setdefault(str(exc), []).append(spec.result_name)
                continue
            self.metrics.append(ScoredMetric(spec.result_name, spec.metric, metric, metric.info.kind))
        for reason, names in unavailable.items():
            label = "metric" if len(names) == 1 else "metrics"
            self.warn(f"{label} {', '.join(repr(n) for n in names)} skipped: {reason}")

    def _skip(self, result_name: str, exc: Exception) -> None:
        self.skipped[result_name] = str(exc)
        self.warn(f"metric '{result_name}' skipped: {exc}")
        self.metrics = [m for m in self.metrics if m.result_name != result_name]

    @property
    def has_distribution(self) -> bool:
        return any(m.kind == "distribution" for m in self.metrics)

    def describe(self) -> dict[str, Any]:
        """Metric options as recorded in the run record."""
        return {
            m.result_name: {
                "metric": m.metric_name,
                "kind": m.kind,
                "higher_better": m.metric.info.higher_better,
                "reference": "none" if m.metric.info.no_reference else "full",
                "options": m.metric.options(),
            }
            for m in self.metrics
        }

    def paired(self, ref: torch.Tensor, test: torch.Tensor) -> dict[str, torch.Tensor]:
        """result name -> one value per image of the batch, left on the device (paired metrics only).

        ``ref``/``test`` are uint8 or [0,1] float; metrics that read 8-bit values get uint8 as it is, the others
        share one float conversion."""
        from cirbench.metrics import MetricError
        from cirbench.metrics._base import as_unit_float

        values: dict[str, torch.Tensor] = {}
        unit: tuple[torch.Tensor, torch.Tensor] | None = None
        for scored in list(self.metrics):
            if scored.kind != "paired":
                continue
            pair = (ref, test)
            if not getattr(scored.metric, "reads_8bit", False):
                unit = unit or (as_unit_float(ref), as_unit_float(test))
                pair = unit
            try:
                values[scored.result_name] = scored.metric(*pair).detach()
            except WeightsUnavailable as exc:
                self._skip(scored.result_name, exc)
            except MetricError as exc:  # this batch only (e.g. MS-SSIM on images under 161 px): the rest is scored
                count = self.image_skips.get(scored.result_name, 0)
                if not count:
                    self.warn(f"metric '{scored.result_name}' skipped for some images: {exc}")
                self.image_skips[scored.result_name] = count + ref.shape[0]
                self.skipped[scored.result_name] = f"{self.image_skips[scored.result_name]} image(s) not scored: {exc}"
        return values

    def update_sets(self, ref: torch.Tensor, test: torch.Tensor) -> None:
        """Feed the set metrics; one that cannot use these images (e.g. smaller than its patch) is skipped."""
        from cirbench.metrics import MetricError

        for scored in list(self.metrics):
            if scored.kind == "distribution":
                try:
                    scored.metric.update(ref, test)
                except (WeightsUnavailable, MetricError) as exc:
                    self._skip(scored.result_name, exc)

    def reset_sets(self) -> None:
        for scored in self.metrics:
            if scored.kind == "distribution":
                scored.metric.reset()

    def compute_sets(self) -> dict[str, float]:
        """Whole-set values of the distribution metrics for the images fed since the last reset (named as
        ``cirbench.metrics.profiles.flatten_set_result`` names them)."""
        from cirbench.metrics import MetricError
        from cirbench.metrics.profiles import flatten_set_result

        values: dict[str, float] = {}
        for scored in list(self.metrics):
            if scored.kind != "distribution":
                continue
            try:
                result = scored.metric.compute()
            except MetricError as exc:
                self._skip(scored.result_name, exc)
                continue
            for name, value in flatten_set_result(scored.result_name, scored.metric_name, result).items():
                values[name] = float(value) if value is not None else math.nan
        return values
