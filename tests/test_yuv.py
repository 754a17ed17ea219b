"""RGB <-> Y'CbCr conversions: rounding (never truncation), ranges, 4:2:0 chroma, 10-bit losslessness."""

from __future__ import annotations

import numpy as np
import pytest

from cirbench.codecs._yuv import YuvFormat, planes_to_raw, planes_to_rgb, raw_to_planes, rgb_to_planes
from cirbench.errors import ConfigError


def _all_colours() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
@pytest.mark.parametrize("value_range", ["limited", "full"])
def test_ten_bit_444_round_trip_is_lossless(matrix: str, value_range: str) -> None:
    rgb = _all_colours()
    fmt = YuvFormat(matrix=matrix, range=value_range, bit_depth=10, chroma="444")
    assert np.array_equal(planes_to_rgb(*rgb_to_planes(rgb, fmt), fmt), rgb)


def test_eight_bit_444_rounding_beats_the_truncation_ceiling() -> None:
    rgb = _all_colours()
    fmt = YuvFormat(bit_depth=8, chroma="444")
    back = planes_to_rgb(*rgb_to_planes(rgb, fmt), fmt)
    mse = np.mean((back.astype(float) - rgb) ** 2)
    psnr = 10 * np.log10(255**2 / mse)
    # rounding gives ~50 dB; truncating both ends (CompressAI's VTM/HM wrappers) caps near 43.6 dB
    assert psnr > 47.0
    assert np.abs(back.astype(int) - rgb).max() <= 2


def test_limited_range_code_values_of_black_and_white() -> None:
    rgb = np.array([[[0, 0, 0], [255, 255, 255]]] * 2, dtype=np.uint8)
    y, cb, cr = rgb_to_planes(rgb, YuvFormat(bit_depth=8, chroma="444"))
    assert y[0].tolist() == [16, 235] and cb[0].tolist() == [128, 128] and cr[0].tolist() == [128, 128]
    y10, _, _ = rgb_to_planes(rgb, YuvFormat(bit_depth=10, chroma="444"))
    assert y10[0].tolist() == [64, 940]


def test_bt601_luma_matches_matlab_rgb2ycbcr() -> None:
    rgb = _all_colours()
    y, _, _ = rgb_to_planes(rgb, YuvFormat(bit_depth=8, chroma="444"))
    x = rgb.astype(np.float64) / 255.0
    matlab = 16 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]
    assert np.abs(y.astype(float) - matlab).max() <= 0.5 + 1e-9  # rounded, not truncated


def test_420_planes_have_half_size_and_raw_round_trip() -> None:
    rgb = _all_colours()
    fmt = YuvFormat(bit_depth=10, chroma="420")
    planes = rgb_to_planes(rgb, fmt)
    assert planes[0].shape == (64, 96) and planes[1].shape == (32, 48)
    again = raw_to_planes(planes_to_raw(planes), 64, 96, fmt)
    assert all(np.array_equal(a, b) for a, b in zip(planes, again, strict=True))
    flat = np.full((64, 96, 3), 77, dtype=np.uint8)
    assert np.array_equal(planes_to_rgb(*rgb_to_planes(flat, fmt), fmt), flat)


def test_bad_formats_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        YuvFormat(matrix="bt2020")
    with pytest.raises(ConfigError):
        YuvFormat(bit_depth=12)
    with pytest.raises(ConfigError):
        YuvFormat(chroma="422")
