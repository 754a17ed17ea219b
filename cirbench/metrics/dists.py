"""DISTS (Ding et al., TPAMI 2020): structure and texture similarity of VGG16 features, lower is better.

torchvision's VGG16 with its max pools replaced by L2 pooling; the published alpha/beta weigh 1475 channel terms.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cirbench.metrics import METRICS, MetricError, MetricInfo, PairedMetric
from cirbench.metrics._weights import WeightsSource, load_weights
from cirbench.metrics.lpips import backbone_features
from cirbench.weights.catalogue import DISTS_ALPHA_BETA, VGG16
from cirbench.weights.layouts import Layout, TensorSpec, register_layout

CHANNELS = (3, 64, 128, 256, 512, 512)  # the image itself, then relu1_2 .. relu5_3
STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))  # torchvision vgg16.features slices between the pools
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
C1 = C2 = 1e-6

register_layout(
    DISTS_ALPHA_BETA.filename,
    lambda: Layout({name: TensorSpec((1, sum(CHANNELS), 1, 1), "float32") for name in ("alpha", "beta")},
                   note="DISTS_pytorch's weights.pt"),
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def _hann_taps() -> torch.Tensor:
    """The 3x3 L2-pooling window: the inner taps of a 5-point Hann window, outer product, normalised."""
    taps = np.hanning(5)[1:-1]
    window = torch.tensor(taps[:, None] * taps[None, :], dtype=torch.float32)
    return window / window.sum()


def l2_pool(features: torch.Tensor) -> torch.Tensor:
    """sqrt(Hann-weighted mean of squares), stride 2, padding 1, per channel (DISTS's anti-aliased pooling)."""
    channels = features.shape[1]
    window = _hann_taps().to(features)[None, None].repeat(channels, 1, 1, 1)
    pooled = F.conv2d(features**2, window, stride=2, padding=1, groups=channels)
    return (pooled + 1e-12).sqrt()


def dists_distance(ref_feats, test_feats, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """1 - sum over channels of alpha * (mean similarity) + beta * (covariance similarity), per image."""
    total = alpha.sum() + beta.sum()
    alphas = torch.split(alpha / total, CHANNELS, dim=1)
    betas = torch.split(beta / total, CHANNELS, dim=1)
    structure = texture = 0
    for k, (x, y) in enumerate(zip(test_feats, ref_feats, strict=True)):
        x_mean, y_mean = x.mean([2, 3], keepdim=True), y.mean([2, 3], keepdim=True)
        s1 = (2 * x_mean * y_mean + C1) / (x_mean**2 + y_mean**2 + C1)
        structure = structure + (alphas[k] * s1).sum(1, keepdim=True)
        x_var = ((x - x_mean) ** 2).mean([2, 3], keepdim=True)
        y_var = ((y - y_mean) ** 2).mean([2, 3], keepdim=True)
        cov = (x * y).mean([2, 3], keepdim=True) - x_mean * y_mean
        s2 = (2 * cov + C2) / (x_var + y_var + C2)
        texture = texture + (betas[k] * s2).sum(1, keepdim=True)
    return (1 - (structure + texture)).reshape(-1)


@METRICS.register("dists")
class DISTS(PairedMetric):
    """Deep Image Structure and Texture Similarity per pair, on [0,1] RGB at full size (no resize)."""

    info = MetricInfo(
        name="dists",
        higher_better=False,
        range=(0.0, 1.0),
        needs_weights=True,
        kind="paired",
        description="DISTS (VGG16 + L2 pooling, published alpha/beta), [0,1] RGB, ImageNet-normalised, full size",
        weight_files=(VGG16.filename, DISTS_ALPHA_BETA.filename),
    )

    def __init__(self, device: str = "cpu", weights: WeightsSource = None, alpha_beta: WeightsSource = None,
                 download: bool = True) -> None:  # fmt: skip
        super().__init__(device)
        backbone, provenance = load_weights(weights, VGG16.filename, download)
        mixing, mixing_provenance = load_weights(alpha_beta, DISTS_ALPHA_BETA.filename, download)
        missing = [key for key in ("alpha", "beta") if key not in mixing]
        if missing or any(mixing[k].shape != (1, sum(CHANNELS), 1, 1) for k in ("alpha", "beta") if k in mixing):
            raise MetricError(f"DISTS alpha/beta must be [1,{sum(CHANNELS)},1,1] tensors 'alpha' and 'beta'")
        self.features = backbone_features("vgg", backbone, user="DISTS").eval().to(self.device)
        self.alpha = mixing["alpha"].to(self.device, torch.float32)
        self.beta = mixing["beta"].to(self.device, torch.float32)
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, -1, 1, 1)
        self._mean, self._std = mean, torch.tensor(IMAGENET_STD, device=self.device).view(1, -1, 1, 1)
        self._record(input_range="[0,1]", resize=None, **provenance,
                     **{"alpha_beta_" + k: v for k, v in mixing_provenance.items()})  # fmt: skip

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The image and the five VGG16 stages' outputs (relu1_2 .. relu5_3, pooled by l2_pool in between)."""
        h = (images - self._mean) / self._std
        maps: list[Any] = [images]
        for index, (start, stop) in enumerate(STAGES):
            if index:
                h = l2_pool(h)
            for layer in range(start, stop):
                h = self.features[layer](h)
            maps.append(h)
        return maps

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        ref, test = ref.to(torch.float32), test.to(torch.float32)
        return dists_distance(self.feature_maps(ref), self.feature_maps(test), self.alpha, self.beta)
