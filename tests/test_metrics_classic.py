"""Tests of PSNR, SSIM, MS-SSIM and PSNR-B against independent numpy/scikit-image/pytorch_msssim references.

Images are Kodak crops and their JPEG-decoded versions (real blocking), small enough for fast tests.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cirbench.metrics import METRICS, MetricError, create_metric

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _kodak_pair(name: str = "kodim05.png", box=(100, 60, 100 + 200, 60 + 176), quality: int = 15):
    ref = Image.open(DATA / "kodak" / name).convert("RGB").crop(box)
    buffer = io.BytesIO()
    ref.save(buffer, format="JPEG", quality=quality)
    test = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return np.asarray(ref).copy(), np.asarray(test).copy()


def _tensor(*arrays: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255.0 for a in arrays])


@pytest.fixture(scope="module")
def pairs():
    first = _kodak_pair()
    second = _kodak_pair("kodim23.png", (300, 200, 500, 376), quality=30)
    return [first, second]


def _y_studio(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float64) / 255.0
    return 16.0 + rgb @ np.array([65.481, 128.553, 24.966])


def _np_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10.0 * math.log10(255.0**2 / mse)


def _np_ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of one plane with an explicit 11x11 window over every 'valid' position (Wang 2004)."""
    coords = np.arange(11) - 5.0
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    view_a = np.lib.stride_tricks.sliding_window_view(a.astype(np.float64), (11, 11))
    view_b = np.lib.stride_tricks.sliding_window_view(b.astype(np.float64), (11, 11))
    mu_a = np.einsum("ijkl,kl->ij", view_a, window)
    mu_b = np.einsum("ijkl,kl->ij", view_b, window)
    var_a = np.einsum("ijkl,kl->ij", (view_a - mu_a[..., None, None]) ** 2, window)
    var_b = np.einsum("ijkl,kl->ij", (view_b - mu_b[..., None, None]) ** 2, window)
    cov = np.einsum("ijkl,kl->ij", (view_a - mu_a[..., None, None]) * (view_b - mu_b[..., None, None]), window)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def test_registry_lists_classic_metrics_with_metadata():
    for name in ("psnr", "ssim", "ms_ssim", "psnrb"):
        info = METRICS.get(name).info
        assert info.name == name and info.kind == "paired" and info.higher_better and not info.needs_weights


def test_psnr_rgb_and_y_equal_numpy(pairs):
    ref = _tensor(*(p[0] for p in pairs))
    test = _tensor(*(p[1] for p in pairs))
    rgb = create_metric("psnr")(ref, test)
    y = create_metric("psnr", channel="y")(ref, test)
    assert rgb.dtype == torch.float64 and rgb.shape == (2,)
    for i, (a, b) in enumerate(pairs):
        assert rgb[i].item() == pytest.approx(_np_psnr(a, b), abs=1e-6)
        assert y[i].item() == pytest.approx(_np_psnr(_y_studio(a), _y_studio(b)), abs=1e-6)


def test_psnr_crop_border_equals_numpy_on_cropped(pairs):
    a, b = pairs[0]
    value = create_metric("psnr", crop_border=4)(_tensor(a), _tensor(b)).item()
    assert value == pytest.approx(_np_psnr(a[4:-4, 4:-4], b[4:-4, 4:-4]), abs=1e-6)
    assert value != pytest.approx(_np_psnr(a, b), abs=1e-6)


def test_psnr_y_studio_minus_full_range_is_constant(pairs):
    ref, test = _tensor(pairs[0][0]), _tensor(pairs[0][1])
    studio = create_metric("psnr", channel="y")(ref, test).item()
    full = create_metric("psnr", channel="y_full")(ref, test).item()
    assert studio - full == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_psnr_identical_is_inf_and_noise_is_finite():
    image = torch.rand(1, 3, 16, 16)
    assert math.isinf(create_metric("psnr")(image, image).item())


def test_ssim_equals_numpy_formula_and_skimage(pairs):
    from skimage.metrics import structural_similarity

    ref = _tensor(*(p[0] for p in pairs))
    test = _tensor(*(p[1] for p in pairs))
    rgb = create_metric("ssim")(ref, test)
    y = create_metric("ssim", channel="y")(ref, test)
    for i, (a, b) in enumerate(pairs):
        expected = np.mean([_np_ssim_plane(a[..., c], b[..., c]) for c in range(3)])
        assert rgb[i].item() == pytest.approx(expected, abs=1e-7)
        assert y[i].item() == pytest.approx(_np_ssim_plane(_y_studio(a), _y_studio(b)), abs=1e-7)
        sk = structural_similarity(
            a.astype(np.float64),
            b.astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=2,
        )
        assert rgb[i].item() == pytest.approx(sk, abs=1e-4)


def test_ssim_rejects_tiny_images_and_bad_inputs():
    with pytest.raises(MetricError):
        create_metric("ssim")(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(MetricError):
        create_metric("ssim")(torch.rand(1, 3, 16, 16) * 255, torch.rand(1, 3, 16, 16))
    with pytest.raises(MetricError):
        create_metric("psnr")(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(MetricError):
        create_metric("psnr", channel="yuv")


def test_ms_ssim_equals_pytorch_msssim(pairs):
    pytorch_msssim = pytest.importorskip("pytorch_msssim", reason="pytorch_msssim (reference) is not installed")
    a, b = pairs[0]
    ref, test = _tensor(a), _tensor(b)
    ours = create_metric("ms_ssim")(ref, test).item()
    expected = pytorch_msssim.ms_ssim(
        torch.round(ref.double() * 255), torch.round(test.double() * 255), data_range=255, size_average=True
    ).item()
    assert ours == pytest.approx(expected, abs=1e-6)  # pytorch_msssim builds its window in float32
    assert 0.0 < ours < 1.0
    with pytest.raises(MetricError, match="161"):
        create_metric("ms_ssim")(ref[..., :160, :], test[..., :160, :])


def _np_psnrb_plane(ref: np.ndarray, test: np.ndarray, block: int = 8) -> float:
    """PSNR-B of one plane written from the formulas of Yim & Bovik (loops over neighbour pairs)."""
    ref, test = ref.astype(np.float64) / 255.0, test.astype(np.float64) / 255.0
    height, width = test.shape
    d_b = d_bc = 0.0
    for i in range(width - 1):
        sq = float(np.sum((test[:, i] - test[:, i + 1]) ** 2))
        d_b, d_bc = (d_b + sq, d_bc) if (i + 1) % block == 0 else (d_b, d_bc + sq)
    for j in range(height - 1):
        sq = float(np.sum((test[j, :] - test[j + 1, :]) ** 2))
        d_b, d_bc = (d_b + sq, d_bc) if (j + 1) % block == 0 else (d_b, d_bc + sq)
    n_hb, n_vb = height * (width // block - 1), width * (height // block - 1)
    n_hbc, n_vbc = height * (width - 1) - n_hb, width * (height - 1) - n_vb
    mean_b, mean_bc = d_b / (n_hb + n_vb), d_bc / (n_hbc + n_vbc)
    eta = math.log2(block) / math.log2(min(height, width)) if mean_b > mean_bc else 0.0
    mse_b = np.mean((ref - test) ** 2) + eta * (mean_b - mean_bc)
    return 10.0 * math.log10(1.0 / mse_b)


def test_psnrb_equals_formula_and_penalises_blocking(pairs):
    a, b = pairs[0]
    ours = create_metric("psnrb")(_tensor(a), _tensor(b)).item()
    expected = np.mean([_np_psnrb_plane(a[..., c], b[..., c]) for c in range(3)])
    assert ours == pytest.approx(expected, abs=1e-6)
    plain = np.mean([_np_psnr(a[..., c], b[..., c]) for c in range(3)])
    assert ours < plain  # JPEG q15 has visible block edges: BEF > 0
    y = create_metric("psnrb", channel="y")(_tensor(a), _tensor(b)).item()
    assert y == pytest.approx(_np_psnrb_plane(_y_studio(a), _y_studio(b)), abs=1e-6)


def test_options_are_recorded():
    options = create_metric("ssim", channel="y", crop_border=2).options()
    assert options["channel"] == "y" and options["crop_border"] == 2 and options["padding"] == "valid"


def test_unknown_metric_name_suggests_the_close_one():
    from cirbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="did you mean 'psnr'"):
        create_metric("psnrr")
