"""LPIPS tests: parity with lpips.LPIPS under identical seeded backbone weights, the [0,1] conversion, weights path.

Real AlexNet/VGG weights cannot be downloaded here; a seeded random torchvision state_dict stands in for them.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torchvision

import cirbench.weights.manager as weights_module
from cirbench.fileio import sha256_file
from cirbench.metrics import METRICS, MetricError, create_metric
from cirbench.weights.manager import WeightFile, WeightsCorrupt, WeightsUnavailable, catalogue

ALEX_FILE = "alexnet-owt-7be5be79.pth"


@functools.cache
def _random_backbone(net: str = "alex", seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = torchvision.models.alexnet(weights=None) if net == "alex" else torchvision.models.vgg16(weights=None)
    return model.state_dict()


def _reference_lpips(net: str, backbone: dict[str, torch.Tensor]):
    """lpips.LPIPS with its shipped lin layers and the same backbone, mapped by key (independent of our loader)."""
    import lpips

    model = lpips.LPIPS(pretrained=True, net=net, version="0.1", pnet_rand=True, verbose=False)
    mapped = {}
    for name in model.net.state_dict():
        block, index, param = name.split(".")
        mapped[name] = backbone[f"features.{index}.{param}"]
    model.net.load_state_dict(mapped, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    ref = torch.round(torch.rand(3, 3, 64, 80) * 255) / 255
    test = torch.round((ref + 0.08 * torch.randn_like(ref)).clamp(0, 1) * 255) / 255
    return ref, test


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_reference_package(images, net):
    ref, test = images
    backbone = _random_backbone(net)
    ours = create_metric("lpips", net=net, weights=backbone)(ref, test)
    with torch.no_grad():
        expected = _reference_lpips(net, backbone)(ref * 2 - 1, test * 2 - 1).reshape(-1).double()
    assert ours.shape == (3,) and ours.dtype == torch.float64
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
    assert ours.min() > 0


def test_unconverted_zero_one_input_gives_a_different_value(images):
    ref, test = images
    backbone = _random_backbone()
    ours = create_metric("lpips", weights=backbone)(ref, test)
    with torch.no_grad():
        wrong = _reference_lpips("alex", backbone)(ref, test).reshape(-1).double()  # [0,1] fed to a [-1,1] API
    assert (ours - wrong).abs().min() > 1e-4


def test_lpips_metadata_and_recorded_options(images):
    info = METRICS.get("lpips").info
    assert info.needs_weights and not info.higher_better
    options = create_metric("lpips", weights=_random_backbone()).options()
    assert options["net"] == "alex" and options["version"] == "0.1"
    assert options["weights"] == "in-memory state_dict" and "wheel" in options["lin_weights"]
    with pytest.raises(MetricError):
        create_metric("lpips", net="squeezy", weights=_random_backbone())


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone part LPIPS uses (keeps the test file small; the classifier is never read)."""
    return {key: value for key, value in state.items() if key.startswith("features.")}


def _install_canonical(monkeypatch, tmp_path, filename: str, state: dict[str, torch.Tensor]):
    """Save ``state`` under its canonical name in $TORCH_HOME and register a spec whose prefix matches it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CIRBENCH_OFFLINE", raising=False)
    path = tmp_path / "hub" / "checkpoints" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    original = catalogue()[filename]
    spec = WeightFile(filename, original.url, sha256_file(path)[:8], original.purpose, original.licence)
    monkeypatch.setitem(weights_module._CATALOGUE, filename, spec)
    return path


def test_lpips_loads_the_canonical_file_from_the_cache(monkeypatch, tmp_path, images):
    ref, test = images
    backbone = _random_backbone(seed=3)
    _install_canonical(monkeypatch, tmp_path, ALEX_FILE, _features_only(backbone))
    metric = create_metric("lpips")
    assert metric.options()["weights"] == ALEX_FILE
    torch.testing.assert_close(metric(ref, test), create_metric("lpips", weights=backbone)(ref, test), atol=0, rtol=0)


def test_lpips_rejects_a_tampered_canonical_file(monkeypatch, tmp_path):
    path = _install_canonical(monkeypatch, tmp_path, ALEX_FILE, _features_only(_random_backbone(seed=4)))
    with open(path, "r+b") as handle:
        handle.seek(-8, 2)
        handle.write(b"\x00tamper!")
    with pytest.raises(WeightsCorrupt):
        create_metric("lpips")


def test_lpips_offline_without_weights_names_file_url_and_import(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as caught:
        create_metric("lpips")
    message = str(caught.value)
    assert ALEX_FILE in message and "download.pytorch.org" in message and "cirbench weights import" in message
