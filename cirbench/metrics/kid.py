"""KID: unbiased MMD^2 of Inception pool3 features with the cubic polynomial kernel over seeded subsets.

Unlike FID it keeps the features (N x 2048 float64) because subsets are drawn at the end; seeded, so repeatable.
"""

from __future__ import annotations

from typing import Any

import torch

from cirbench.metrics import METRICS, MetricInfo
from cirbench.metrics._stats import kernel_inception_distance
from cirbench.metrics._weights import WeightsSource
from cirbench.metrics.fid import InceptionDistributionMetric
from cirbench.weights.catalogue import INCEPTION_FID


@METRICS.register("kid")
class KID(InceptionDistributionMetric):
    """Kernel Inception distance (mean and std over subsets; lower is better); patch_size 256 gives KID/256."""

    info = MetricInfo(
        name="kid",
        higher_better=False,
        range=(float("-inf"), float("inf")),
        needs_weights=True,
        kind="distribution",
        description="KID, k(x,y) = (x.y/2048 + 1)^3, 100 seeded subsets of up to 1000; unbiased, usable at small N",
        weight_files=(INCEPTION_FID.filename,),
    )

    def __init__(
        self,
        device: str = "cpu",
        patch_size: int = 0,
        subsets: int = 100,
        subset_size: int = 1000,
        degree: int = 3,
        gamma: float | None = None,
        coef: float = 1.0,
        seed: int = 0,
        weights: WeightsSource = None,
        batch_size: int = 32,
        download: bool = True,
    ) -> None:
        super().__init__(device, patch_size, weights, batch_size, download)
        self.kernel = {
            "subsets": int(subsets),
            "subset_size": int(subset_size),
            "degree": int(degree),
            "gamma": gamma,
            "coef": float(coef),
            "seed": int(seed),
        }
        self._record(**self.kernel)
        self.reset()

    def update(self, ref: torch.Tensor, test: torch.Tensor) -> None:
        ref_features, test_features = self._features(ref, test)
        self.ref_features.append(ref_features)
        self.test_features.append(test_features)

    def compute(self) -> dict[str, Any]:
        ref = torch.cat(self.ref_features) if self.ref_features else torch.zeros(0, 2048, dtype=torch.float64)
        test = torch.cat(self.test_features) if self.test_features else torch.zeros(0, 2048, dtype=torch.float64)
        mean, std, subset = kernel_inception_distance(ref, test, **self.kernel)
        return {
            "kid_mean": mean,
            "kid_std": std,
            "kid_subset_size": subset,
            "n_ref": ref.shape[0],
            "n_test": test.shape[0],
            "n_images_ref": self.images_ref,
            "n_images_test": self.images_test,
        }

    def reset(self) -> None:
        self.ref_features: list[torch.Tensor] = []
        self.test_features: list[torch.Tensor] = []
        self.images_ref = self.images_test = 0
