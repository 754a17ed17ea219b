"""FID, patch FID and KID tests: parity with pytorch-fid under identical seeded Inception weights, analytic cases.

The real TF Inception weights cannot be downloaded here; a seeded random state_dict of the same graph stands in.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import cirbench.metrics._inception as inception_module
import cirbench.weights.manager as weights_module
from cirbench.fileio import sha256_file
from cirbench.metrics import METRICS, MetricError, create_metric
from cirbench.metrics._inception import fid_inception_architecture, image_patches
from cirbench.metrics._stats import RunningMoments, SmallSampleWarning, frechet_distance, kernel_inception_distance
from cirbench.weights.manager import WeightFile, catalogue

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"


def _random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded weights scaled so that activations stay O(1) through the ~90 layers (default init vanishes)."""
    torch.manual_seed(seed)
    net = fid_inception_architecture("cpu")
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.8, 1.2)
            torch.nn.init.normal_(module.bias, 0.0, 0.1)
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


@pytest.fixture(scope="module")
def state():
    return _random_inception_state()


@pytest.fixture(scope="module")
def image_sets():
    generator = torch.Generator().manual_seed(5)
    base = torch.rand(1, 3, 40, 48, generator=generator)
    ref = torch.round((base + 0.3 * torch.rand(2, 3, 40, 48, generator=generator)).clamp(0, 1) * 255) / 255
    test = torch.round((ref + 0.2 * torch.randn(ref.shape, generator=generator)).clamp(0, 1) * 255) / 255
    return ref, test


def _pytorch_fid_activations(images: torch.Tensor, state, folder) -> np.ndarray:
    """pytorch-fid's own pipeline (PNG files -> get_activations) with its URL loader answering ``state``."""
    from pytorch_fid import fid_score, inception

    files = []
    for index, image in enumerate(images):
        path = folder / f"{index}.png"
        Image.fromarray(torch.round(image * 255).byte().permute(1, 2, 0).numpy()).save(path)
        files.append(path)
    original = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: state
    try:
        model = inception.InceptionV3([3])
    finally:
        inception.load_state_dict_from_url = original
    return fid_score.get_activations(files, model, batch_size=len(files), dims=2048, device="cpu", num_workers=0)


def test_fid_features_and_distance_equal_pytorch_fid(state, image_sets, tmp_path):
    from pytorch_fid.fid_score import calculate_frechet_distance

    ref, test = image_sets
    metric = create_metric("fid", weights=state)
    ours_ref = metric.extract(ref).numpy()
    (tmp_path / "ref").mkdir()
    (tmp_path / "test").mkdir()
    theirs_ref = _pytorch_fid_activations(ref, state, tmp_path / "ref")
    theirs_test = _pytorch_fid_activations(test, state, tmp_path / "test")
    assert np.abs(theirs_ref).mean() > 0.1  # the random network does not vanish
    np.testing.assert_allclose(ours_ref, theirs_ref, atol=1e-3, rtol=0)
    metric.update(ref, test)  # ref features come from the memo (same tensor)
    for moments, theirs in ((metric.ref_moments, theirs_ref), (metric.test_moments, theirs_test)):
        mean, cov = moments.mean_cov()  # the streamed statistics FID is computed from
        np.testing.assert_allclose(mean, theirs.mean(0), atol=1e-3, rtol=0)
        np.testing.assert_allclose(cov, np.cov(theirs, rowvar=False), atol=1e-6, rtol=1e-3)
    assert metric.ref_moments.count == 2 and metric.test_moments.count == 2
    # pytorch-fid's own distance on the leading 64 features (scipy sqrtm of 2048x2048 takes minutes on 2 cores)
    sub_ref, sub_test = theirs_ref[:, :64], theirs_test[:, :64]
    stats = (sub_ref.mean(0), np.cov(sub_ref, rowvar=False), sub_test.mean(0), np.cov(sub_test, rowvar=False))
    assert frechet_distance(*stats) == pytest.approx(calculate_frechet_distance(*stats), abs=1e-3, rel=1e-4)


def test_frechet_distance_analytic_and_against_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    dims = 512
    assert frechet_distance(np.zeros(dims), np.eye(dims), np.ones(dims), np.eye(dims)) == pytest.approx(dims, abs=1e-6)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 32)), rng.normal(0.3, 1.5, size=(400, 32)) @ rng.normal(size=(32, 32))
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance(*stats) == pytest.approx(calculate_frechet_distance(*stats), abs=1e-6)


def test_running_moments_equal_numpy_over_batches():
    rng = np.random.default_rng(1)
    rows = rng.normal(1000.0, 3.0, size=(37, 6))
    moments = RunningMoments()
    for chunk in np.array_split(rows, [5, 6, 20]):
        moments.update(torch.from_numpy(chunk))
    mean, cov = moments.mean_cov()
    np.testing.assert_allclose(mean, rows.mean(0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(cov, np.cov(rows, rowvar=False), rtol=0, atol=1e-10)
    assert moments.count == 37


def test_patch_count_and_content():
    image = torch.arange(3 * 512 * 768, dtype=torch.float32).reshape(1, 3, 512, 768)
    patches = image_patches(image)
    assert patches.shape == (8, 3, 256, 256)
    torch.testing.assert_close(patches[0], image[0, :, :256, :256])
    torch.testing.assert_close(patches[5], image[0, :, 256:, 512:])
    torch.testing.assert_close(patches[6], image[0, :, 128:384, 128:384])
    assert image_patches(torch.zeros(2, 3, 300, 300)).shape[0] == 2  # no shifted grid below 384 px
    with pytest.raises(MetricError):
        image_patches(torch.zeros(1, 3, 200, 300))


def test_kid_is_seeded_and_equals_torchmetrics_mmd():
    from torchmetrics.image.kid import poly_mmd

    generator = torch.Generator().manual_seed(2)
    x = torch.randn(30, 16, generator=generator, dtype=torch.float64)
    y = torch.randn(30, 16, generator=generator, dtype=torch.float64) + 0.5
    first = kernel_inception_distance(x, y, subsets=10, subset_size=12, degree=3, gamma=None, coef=1.0, seed=7)
    again = kernel_inception_distance(x, y, subsets=10, subset_size=12, degree=3, gamma=None, coef=1.0, seed=7)
    other = kernel_inception_distance(x, y, subsets=10, subset_size=12, degree=3, gamma=None, coef=1.0, seed=8)
    assert first == again and first[0] != other[0] and first[2] == 12
    whole = kernel_inception_distance(x, y, subsets=1, subset_size=100, degree=3, gamma=None, coef=1.0, seed=0)
    assert whole[0] == pytest.approx(float(poly_mmd(x, y, degree=3, gamma=1 / 16, coef=1.0)), abs=1e-10)


def test_kid_and_patch_fid_metrics_record_n_and_warn(state):
    ref = torch.rand(2, 3, 256, 384)
    test = (ref + 0.1 * torch.randn_like(ref)).clamp(0, 1)
    kid = create_metric("kid", weights=state, patch_size=256, subsets=5, seed=3)
    kid.update(ref, test)
    result = kid.compute()
    assert result["n_ref"] == 2 * 1 and result["n_images_ref"] == 2 and result["kid_subset_size"] == 2
    assert result == kid.compute()  # same seed, same subsets
    patch_fid = create_metric("patch_fid", weights=state)
    patch_fid.update(ref, test)  # same model and tensors: features come from the memo
    with pytest.warns(SmallSampleWarning, match="N=2"):
        fid = patch_fid.compute()
    assert fid["fid"] > 0 and fid["n_test"] == 2 and fid["n_images_test"] == 2
    patch_fid.reset()
    with pytest.raises(MetricError):
        patch_fid.compute()
    assert METRICS.get("kid").info.kind == "distribution" and not METRICS.get("fid").info.higher_better


def test_fid_loads_the_canonical_file_from_the_cache(monkeypatch, tmp_path, state):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CIRBENCH_OFFLINE", raising=False)
    monkeypatch.setattr(inception_module, "_MODELS", {})
    path = tmp_path / "hub" / "checkpoints" / INCEPTION_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    original = catalogue()[INCEPTION_FILE]
    spec = WeightFile(INCEPTION_FILE, original.url, sha256_file(path)[:8], original.purpose, original.licence)
    monkeypatch.setitem(weights_module._CATALOGUE, INCEPTION_FILE, spec)
    metric = create_metric("fid")
    assert metric.options()["weights"] == INCEPTION_FILE
    loaded = metric.extract.model.layers[0].conv.weight
    torch.testing.assert_close(loaded, state["Conv2d_1a_3x3.conv.weight"], atol=0, rtol=0)
