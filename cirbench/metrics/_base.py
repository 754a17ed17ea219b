"""Base classes of cirbench metrics: metadata, option recording, input checks, paired and streaming APIs.

Paired metrics map (ref, test) batches to one float64 value per image; distribution metrics stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from cirbench.errors import CirbenchError


class MetricError(CirbenchError):
    """A metric got inputs it cannot score (wrong shape, range, size) or options it does not know."""


class MetricUnavailable(MetricError):
    """A metric cannot be built here: the optional package it runs on is not installed (e.g. pyiqa, [iqa])."""


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is: its name, direction, value range, whether it needs weights, and its kind."""

    name: str
    higher_better: bool
    range: tuple[float, float]
    needs_weights: bool
    kind: Literal["paired", "distribution"]
    description: str
    weight_files: tuple[str, ...] = ()  # canonical files its default configuration loads (`cirbench weights list`)
    no_reference: bool = False  # True: scores the restored image alone (NIQE, MUSIQ); the reference is not read


class Metric:
    """Common part of every metric: a device, metadata, and the options it was built with."""

    info: MetricInfo

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self._options: dict[str, Any] = {}

    def _record(self, **options: Any) -> None:
        """Store options (every one, defaults included) so results say how they were computed."""
        self._options.update(options)

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"{type(self).__name__}({opts})"


def check_pair(ref: torch.Tensor, test: torch.Tensor) -> None:
    """Raise MetricError unless ref/test are same-shaped [B,3,H,W] tensors on one device: float in [0,1], or uint8
    (the 8-bit values themselves, as a PNG stores them)."""
    for label, image in (("ref", ref), ("test", test)):
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise MetricError(f"{label} must be a float tensor [B,3,H,W], got {shape}")
        if image.dtype == torch.uint8:
            continue
        if not image.is_floating_point():
            raise MetricError(f"{label} must be a float tensor in [0,1] or uint8, got dtype {image.dtype}")
        if image.numel() and not _within_unit_range(image):
            raise MetricError(f"{label} values must lie in [0,1] (8-bit images divided by 255)")
    if ref.shape != test.shape:
        raise MetricError(f"ref and test shapes differ: {tuple(ref.shape)} vs {tuple(test.shape)}")
    if ref.device != test.device:
        raise MetricError(f"ref and test are on different devices: {ref.device} vs {test.device}")


def _within_unit_range(image: torch.Tensor) -> bool:
    low, high = torch.aminmax(image)
    return bool(low >= 0.0) and bool(high <= 1.0)


def to_8bit_grid(image: torch.Tensor) -> torch.Tensor:
    """[0,1] float -> float64 on the 0..255 integer grid (undoes the /255 rounding error exactly); uint8 -> float64."""
    if image.dtype == torch.uint8:
        return image.to(torch.float64)
    return torch.round(image.to(torch.float64) * 255.0)


def as_unit_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 k/255 (what every [0,1] metric reads); a float tensor unchanged."""
    return image.to(torch.float32).div_(255.0) if image.dtype == torch.uint8 else image


def crop(image: torch.Tensor, border: int) -> torch.Tensor:
    if border < 0:
        raise MetricError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return image
    if 2 * border >= min(image.shape[-2:]):
        raise MetricError(f"crop_border {border} leaves nothing of a {tuple(image.shape[-2:])} image")
    return image[..., border:-border, border:-border]


class PairedMetric(Metric):
    """A full-reference metric with one value per image pair.

    Inputs are float [0,1] or uint8; a metric with ``reads_8bit = True`` gets uint8 as it is (it works on the 8-bit
    grid anyway), any other gets float32 k/255.
    """

    reads_8bit = False

    def __call__(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        check_pair(ref, test)
        if not self.reads_8bit:
            ref, test = as_unit_float(ref), as_unit_float(test)
        with torch.no_grad():
            values = self.compute_batch(ref.to(self.device), test.to(self.device))
        return values.to(torch.float64)

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NoReferenceMetric(PairedMetric):
    """A no-reference metric: one value per restored image, the reference unused (it keeps the paired call so the
    evaluation stores it per image like any paired metric); ``score(images)`` is the direct form."""

    def __call__(self, ref: torch.Tensor | None, test: torch.Tensor) -> torch.Tensor:
        if ref is not None:
            check_pair(ref, test)
        return self.score(test)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        check_pair(images, images)
        with torch.no_grad():
            values = self.compute_images(as_unit_float(images).to(self.device))
        return values.to(torch.float64)

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        return self.compute_images(test)

    def compute_images(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DistributionMetric(Metric):
    """A metric over two image sets, fed batch by batch (update), read with compute(), cleared by reset()."""

    def update(self, ref: torch.Tensor, test: torch.Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float | int]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError
