"""pytorch-fid's Inception-v3 (pool3, 2048-d) built without downloading, plus HiFiC-style 256 px patching.

Weights come through the weights manager; features of the last few batches are memoised so that FID and KID
fed the same tensors run the network once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cirbench.metrics._base import MetricError
from cirbench.metrics._weights import WeightsSource, load_weights
from cirbench.weights.catalogue import INCEPTION_FID
from cirbench.weights.layouts import module_layout, register_layout

FEATURE_DIMS = 2048
INPUT_SIZE = 299
EXTRACTOR_DESCRIPTION = (
    "pytorch-fid InceptionV3 (TF 2015-12-05 weights), pool3 2048-d; [0,1] input resized to 299x299 "
    "bilinear (align_corners=False, no antialias), then 2x-1"
)


def fid_inception_architecture(device: str = "meta") -> torch.nn.Module:
    """pytorch-fid's FID Inception graph (torchvision Inception3 with its patched blocks); 'meta' allocates nothing."""
    from pytorch_fid import inception as pfi

    with torch.device(device):
        net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = pfi.FIDInceptionE_1(1280)
        net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    return net


register_layout(INCEPTION_FID.filename, lambda: module_layout(fid_inception_architecture("meta")))


class InceptionPool3(torch.nn.Module):
    """[N,3,H,W] in [0,1] -> [N,2048] pool3 features, exactly as pytorch-fid's InceptionV3 block 3."""

    def __init__(self, state_dict: dict[str, torch.Tensor]) -> None:
        super().__init__()
        net = fid_inception_architecture()
        try:
            net.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as exc:
            raise MetricError(f"Inception weights do not fit pytorch-fid's FID Inception: {exc}") from exc
        self.layers = torch.nn.Sequential(
            net.Conv2d_1a_3x3,
            net.Conv2d_2a_3x3,
            net.Conv2d_2b_3x3,
            torch.nn.MaxPool2d(3, stride=2),
            net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3,
            torch.nn.MaxPool2d(3, stride=2),
            net.Mixed_5b,
            net.Mixed_5c,
            net.Mixed_5d,
            net.Mixed_6a,
            net.Mixed_6b,
            net.Mixed_6c,
            net.Mixed_6d,
            net.Mixed_6e,
            net.Mixed_7a,
            net.Mixed_7b,
            net.Mixed_7c,
            torch.nn.AdaptiveAvgPool2d((1, 1)),
        )
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.layers(2.0 * x - 1.0).flatten(1)


_MODELS: dict[tuple, tuple[Any, InceptionPool3, dict[str, Any]]] = {}
_MODEL_CACHE_SIZE = 2


def _source_key(device: torch.device, weights: WeightsSource) -> tuple:
    """Identity of a weights source: canonical, a file (path, size, mtime) or one in-memory state_dict object."""
    if weights is None:
        return (str(device), "canonical")
    if isinstance(weights, Mapping):
        return (str(device), "state_dict", id(weights))
    path = Path(weights).resolve()
    stat = path.stat() if path.is_file() else None
    return (str(device), "file", str(path), stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1)


def load_inception(device: torch.device, weights: WeightsSource, download: bool = True):
    """(model, provenance), built once per device and weights source, so FID and KID share it (and its memo)."""
    key = _source_key(device, weights)
    if key in _MODELS:
        _, model, provenance = _MODELS[key]
        return model, provenance
    state, provenance = load_weights(weights, INCEPTION_FID.filename, download)
    model = InceptionPool3(state).to(device)
    _MODELS[key] = (weights, model, provenance)  # keeps the source alive so that its id stays unique
    while len(_MODELS) > _MODEL_CACHE_SIZE:
        del _MODELS[next(iter(_MODELS))]
    return model, provenance


def image_patches(images: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Non-overlapping size x size patches, plus the grid shifted by size/2 when both sides >= 1.5*size (HiFiC)."""
    height, width = images.shape[-2:]
    if height < size or width < size:
        raise MetricError(f"patch mode needs images of at least {size}x{size}, got {height}x{width}")
    grids = [images]
    if height >= 1.5 * size and width >= 1.5 * size:
        grids.append(images[..., size // 2 :, size // 2 :])
    patches = []
    for grid in grids:
        tiles = grid.unfold(2, size, size).unfold(3, size, size)  # [B,C,nh,nw,size,size]
        patches.append(tiles.permute(0, 2, 3, 1, 4, 5).reshape(-1, images.shape[1], size, size))
    return torch.cat(patches)


class FeatureExtractor:
    """Runs an InceptionPool3 in chunks; remembers the features of the last few input tensors."""

    _memo: list[tuple[torch.Tensor, int, int, int, torch.Tensor]] = []
    MEMO_SIZE = 4

    def __init__(self, model: InceptionPool3, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = max(1, int(batch_size))

    def __call__(self, images: torch.Tensor, patch_size: int = 0) -> torch.Tensor:
        """float64 [N,2048] features of images (patch_size 0) or of their patches."""
        for tensor, version, model_id, patch, features in self._memo:
            if tensor is images and version == images._version and model_id == id(self.model) and patch == patch_size:
                return features
        device = next(self.model.parameters()).device
        inputs = image_patches(images, patch_size) if patch_size else images
        with torch.no_grad():
            chunks = [self.model(chunk.to(device, torch.float32)) for chunk in inputs.split(self.batch_size)]
        features = torch.cat(chunks).to(torch.float64)
        self._memo.insert(0, (images, images._version, id(self.model), patch_size, features))
        del self._memo[self.MEMO_SIZE :]
        return features
