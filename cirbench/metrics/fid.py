"""FID with pytorch-fid's Inception (pool3, 2048-d) and streaming float64 statistics; whole images or FID/256.

Patch FID cuts every image into 256 px patches as HiFiC does (``patch_fid``); N (samples per side) is recorded.
"""

from __future__ import annotations

from typing import Any

import torch

from cirbench.metrics import METRICS, DistributionMetric, MetricError, MetricInfo
from cirbench.metrics._base import _within_unit_range
from cirbench.metrics._inception import EXTRACTOR_DESCRIPTION, FeatureExtractor, load_inception
from cirbench.metrics._stats import RunningMoments, frechet_distance, warn_small_sample
from cirbench.metrics._weights import WeightsSource
from cirbench.weights.catalogue import INCEPTION_FID


def check_images(label: str, images: torch.Tensor) -> None:
    """Raise MetricError unless ``images`` is a float [B,3,H,W] batch in [0,1]."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise MetricError(f"{label} must be a float tensor [B,3,H,W]")
    if not images.is_floating_point() or (images.numel() and not _within_unit_range(images)):
        raise MetricError(f"{label} must be a float tensor with values in [0,1]")


class InceptionDistributionMetric(DistributionMetric):
    """Shared part of FID and KID: the Inception extractor, patch mode and the recorded options."""

    def __init__(self, device: str, patch_size: int, weights: WeightsSource, batch_size: int, download: bool) -> None:
        super().__init__(device)
        if patch_size < 0:
            raise MetricError(f"patch_size must be 0 (whole images) or positive, got {patch_size}")
        model, provenance = load_inception(self.device, weights, download)
        self.extract = FeatureExtractor(model, batch_size)
        self.patch_size = int(patch_size)
        mode = (
            f"patches {patch_size}px (+ grid shifted by {patch_size // 2} when both sides >= 1.5x)"
            if patch_size
            else "whole images"
        )
        self._record(mode=mode, patch_size=self.patch_size, features=EXTRACTOR_DESCRIPTION, **provenance)
        self.images_ref = self.images_test = 0

    def _features(self, ref: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images("ref", ref)
        check_images("test", test)
        self.images_ref += ref.shape[0]
        self.images_test += test.shape[0]
        return self.extract(ref, self.patch_size), self.extract(test, self.patch_size)


@METRICS.register("fid")
class FID(InceptionDistributionMetric):
    """Frechet Inception distance between the ref and test sets (lower is better)."""

    info = MetricInfo(
        name="fid",
        higher_better=False,
        range=(0.0, float("inf")),
        needs_weights=True,
        kind="distribution",
        description="FID, pytorch-fid Inception pool3 (2048-d), streaming float64 statistics; whole images",
        weight_files=(INCEPTION_FID.filename,),
    )

    def __init__(
        self,
        device: str = "cpu",
        patch_size: int = 0,
        weights: WeightsSource = None,
        batch_size: int = 32,
        download: bool = True,
    ) -> None:
        super().__init__(device, patch_size, weights, batch_size, download)
        self.ref_moments = RunningMoments()
        self.test_moments = RunningMoments()

    def update(self, ref: torch.Tensor, test: torch.Tensor) -> None:
        ref_features, test_features = self._features(ref, test)
        self.ref_moments.update(ref_features)
        self.test_moments.update(test_features)

    def compute(self) -> dict[str, Any]:
        count = min(self.ref_moments.count, self.test_moments.count)
        hint = "compare only values with equal N, or report KID" if self.patch_size else "use patch_fid or KID"
        warn_small_sample("FID", count, hint)
        mu_ref, cov_ref = self.ref_moments.mean_cov()
        mu_test, cov_test = self.test_moments.mean_cov()
        return {
            "fid": frechet_distance(mu_ref, cov_ref, mu_test, cov_test),
            "n_ref": self.ref_moments.count,
            "n_test": self.test_moments.count,
            "n_images_ref": self.images_ref,
            "n_images_test": self.images_test,
        }

    def reset(self) -> None:
        self.ref_moments.reset()
        self.test_moments.reset()
        self.images_ref = self.images_test = 0


@METRICS.register("patch_fid")
class PatchFID(FID):
    """FID/256 (HiFiC, Mentzer et al. 2020): FID over 256 px patches of every image."""

    info = MetricInfo(
        name="patch_fid",
        higher_better=False,
        range=(0.0, float("inf")),
        needs_weights=True,
        kind="distribution",
        description="FID/256: 256x256 patches (+ grid shifted by 128 when both sides >= 384), as HiFiC",
        weight_files=(INCEPTION_FID.filename,),
    )

    def __init__(
        self,
        device: str = "cpu",
        patch_size: int = 256,
        weights: WeightsSource = None,
        batch_size: int = 32,
        download: bool = True,
    ) -> None:
        if patch_size <= 0:
            raise MetricError("patch_fid needs a positive patch_size (use 'fid' for whole images)")
        super().__init__(device, patch_size, weights, batch_size, download)
