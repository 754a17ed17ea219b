"""LPIPS v0.1 through the ``lpips`` package: our API takes [0,1] images and maps them to [-1,1] itself.

The backbone (torchvision AlexNet or VGG16) comes from the verified weights file; the linear layers ship in the wheel.
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from pathlib import Path
from typing import Any

import torch

from cirbench.metrics import METRICS, MetricError, MetricInfo, PairedMetric
from cirbench.metrics._weights import WeightsSource, load_weights
from cirbench.weights.catalogue import ALEXNET, VGG16
from cirbench.weights.layouts import Layout, module_layout, register_layout

BACKBONE_FILES = {"alex": ALEXNET.filename, "vgg": VGG16.filename}


def _torchvision_layout(net: str) -> Layout:
    import torchvision

    model = torchvision.models.alexnet(weights=None) if net == "alex" else torchvision.models.vgg16(weights=None)
    return module_layout(model, note="torchvision's ImageNet classifier; LPIPS uses its features.* tensors")


for _net, _filename in BACKBONE_FILES.items():
    register_layout(_filename, functools.partial(_torchvision_layout, _net))
VERSIONS = ("0.1",)


def backbone_features(net: str, state_dict: dict[str, torch.Tensor], user: str = "LPIPS") -> torch.nn.Sequential:
    """torchvision's ``features`` stack of ``net`` (alex or vgg, i.e. vgg16) holding the ``features.*`` tensors of
    ``state_dict``; built on the meta device, so nothing is initialised or downloaded (LPIPS and DISTS use it)."""
    import torchvision

    with torch.device("meta"):  # architecture only: no random init, no download
        model = torchvision.models.alexnet(weights=None) if net == "alex" else torchvision.models.vgg16(weights=None)
    features = {key[len("features.") :]: value for key, value in state_dict.items() if key.startswith("features.")}
    try:
        model.features.load_state_dict(features, strict=True, assign=True)
    except RuntimeError as exc:
        raise MetricError(f"{user} backbone weights do not fit torchvision {net}: {exc}") from exc
    return model.features


def lin_weights_path(net: str, version: str) -> Path:
    """The v0.1 linear-layer file that ships inside the installed lpips wheel."""
    import lpips as lpips_package

    return Path(lpips_package.__file__).resolve().parent / "weights" / f"v{version}" / f"{net}.pth"


def build_lpips(net: str, version: str, backbone: dict[str, torch.Tensor], lin: dict[str, torch.Tensor]):
    """An ``lpips.LPIPS`` module with the given backbone and linear weights, nothing downloaded."""
    import lpips as lpips_package

    with warnings.catch_warnings():  # lpips calls torchvision with the deprecated ``pretrained=False``
        warnings.simplefilter("ignore", UserWarning)
        model = lpips_package.LPIPS(pretrained=False, net=net, version=version, pnet_rand=True, verbose=False)
    features = backbone_features(net, backbone)
    for block in model.net.children():
        for index, module in block.named_children():
            module.load_state_dict(features[int(index)].state_dict())
    missing, unexpected = model.load_state_dict(lin, strict=False)
    lin_missing = [key for key in missing if key.startswith("lin") and not key.startswith("lins.")]
    if lin_missing or unexpected:
        raise MetricError(f"LPIPS linear weights do not fit: missing {lin_missing}, unexpected {unexpected}")
    return model.eval()


@METRICS.register("lpips")
class LPIPS(PairedMetric):
    """Learned perceptual distance per image pair (lower is better); net and version are recorded."""

    info = MetricInfo(
        name="lpips",
        higher_better=False,
        range=(0.0, float("inf")),
        needs_weights=True,
        kind="paired",
        description="LPIPS v0.1 (lpips package), alex by default or vgg; [0,1] inputs mapped to [-1,1]",
        weight_files=(ALEXNET.filename,),  # the default net; net=vgg loads VGG16's file
    )

    def __init__(
        self,
        device: str = "cpu",
        net: str = "alex",
        version: str = "0.1",
        weights: WeightsSource = None,
        lin_weights: WeightsSource = None,
        download: bool = True,
    ) -> None:
        super().__init__(device)
        if net not in BACKBONE_FILES:
            raise MetricError(f"LPIPS net must be one of {', '.join(BACKBONE_FILES)}, got '{net}'")
        if version not in VERSIONS:
            raise MetricError(f"LPIPS version must be one of {', '.join(VERSIONS)}, got '{version}'")
        backbone, provenance = load_weights(weights, BACKBONE_FILES[net], download)
        lin, lin_provenance = self._lin(net, version, lin_weights)
        self.model = build_lpips(net, version, backbone, lin).to(self.device)
        self.net, self.version = net, version
        self._record(net=net, version=version, input_range="[0,1] -> 2x-1", **provenance, **lin_provenance)

    @staticmethod
    def _lin(net: str, version: str, source: WeightsSource) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if source is not None:
            state, provenance = load_weights(source, "")
            return state, {"lin_" + key: value for key, value in provenance.items()}
        path = lin_weights_path(net, version)
        state, _ = load_weights(path, "")
        version_text = importlib.metadata.version("lpips")
        return state, {"lin_weights": f"lpips {version_text} wheel: weights/v{version}/{net}.pth"}

    def compute_batch(self, ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
        ref_pm1 = ref.to(torch.float32) * 2.0 - 1.0
        test_pm1 = test.to(torch.float32) * 2.0 - 1.0
        return self.model(ref_pm1, test_pm1).reshape(-1)
