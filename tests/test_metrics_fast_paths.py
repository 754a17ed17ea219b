"""The fast CPU paths of scoring give the same numbers as the plain ones: uint8 inputs, band-parallel SSIM,
libpng decoding, the HR cache and the in-range shortcut of the output check.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cirbench.metrics import MetricError, create_metric

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _jpeg(image: Image.Image, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")).copy()


@pytest.fixture(scope="module")
def whole_pairs():
    """Two whole images nobody tuned for (a 768x512 Kodak and a 480x720 LIVE1 one), each with its JPEG q10."""
    pairs = []
    for path in (DATA / "kodak" / "kodim21.png", sorted((DATA / "live1").glob("*.bmp"))[3]):
        image = Image.open(path).convert("RGB")
        pairs.append((np.asarray(image).copy(), _jpeg(image, 10)))
    return pairs


def _u8(*arrays: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])


def _skimage_ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None) -> float:
    from skimage.metrics import structural_similarity

    return structural_similarity(a.astype(np.float64), b.astype(np.float64), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255, channel_axis=channel_axis)  # fmt: skip


def test_ssim_equals_skimage_within_1e10_on_whole_images(whole_pairs):
    from cirbench.metrics.color import rgb_to_y_studio

    for ref, test in whole_pairs:
        rgb = create_metric("ssim")(_u8(ref), _u8(test)).item()
        assert abs(rgb - _skimage_ssim(ref, test, 2)) < 1e-10
        y_ref, y_test = (rgb_to_y_studio(_u8(x).double())[0, 0].numpy() for x in (ref, test))
        y = create_metric("ssim", channel="y")(_u8(ref), _u8(test)).item()
        assert abs(y - _skimage_ssim(y_ref, y_test, None)) < 1e-10
        cropped = create_metric("ssim", crop_border=7)(_u8(ref), _u8(test)).item()
        assert abs(cropped - _skimage_ssim(ref[7:-7, 7:-7], test[7:-7, 7:-7], 2)) < 1e-10


def test_band_parallel_ssim_is_bit_identical_to_one_thread(whole_pairs):
    from cirbench.metrics import _cpu_pool

    ref, test = whole_pairs[0]
    metric = create_metric("ssim")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # map_bands runs the bands in order on this thread
        serial = metric(_u8(ref), _u8(test))
        torch.set_num_threads(2)
        parallel = metric(_u8(ref), _u8(test))
        assert _cpu_pool._pool is not None and _cpu_pool._pool[0] == 2  # the bands did go to two threads
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(serial, parallel)


@pytest.mark.parametrize(
    ("name", "options"),
    [("psnr", {}), ("psnr", {"channel": "y", "crop_border": 4}), ("ssim", {}), ("ssim", {"channel": "y_full"}),
     ("ms_ssim", {}), ("psnrb", {}), ("psnr", {"float32": True, "mse_epsilon": 1e-8})],
)  # fmt: skip
def test_uint8_inputs_give_the_float_inputs_values(whole_pairs, name, options):
    ref, test = whole_pairs[1]
    metric = create_metric(name, **options)
    as_float = metric(_u8(ref).float() / 255.0, _u8(test).float() / 255.0)
    assert torch.equal(metric(_u8(ref), _u8(test)), as_float)
    mixed = metric(_u8(ref), _u8(test).float() / 255.0)
    assert torch.equal(mixed, as_float)


def test_uint8_reaches_float_metrics_as_k_over_255():
    import torchvision

    torch.manual_seed(0)
    lpips = create_metric("lpips", weights=torchvision.models.alexnet(weights=None).state_dict())
    ref = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    test = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert torch.equal(lpips(ref, test), lpips(ref.float() / 255.0, test.float() / 255.0))
    with pytest.raises(MetricError, match="uint8"):
        create_metric("psnr")(ref.to(torch.int16), test.to(torch.int16))


def _png(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_read_rgb_libpng_path_equals_pillow_and_keeps_its_refusals(tmp_path, whole_pairs):
    from cirbench.dataset.reader import DatasetError, read_rgb
    from cirbench.fileio import decode_png_rgb8, encode_png

    ref = whole_pairs[1][0]
    path = tmp_path / "rgb.png"
    path.write_bytes(encode_png(ref))
    assert decode_png_rgb8(path.read_bytes()) is not None  # the libpng path is the one taken
    assert np.array_equal(read_rgb(path), ref)
    _png(ref, tmp_path / "pil.png")  # written by Pillow (level 6, other filters): same pixels
    assert np.array_equal(read_rgb(tmp_path / "pil.png"), ref)
    with pytest.raises(DatasetError, match="found mode L"):
        read_rgb(_png(ref[..., 0], tmp_path / "gray.png"))
    with pytest.raises(DatasetError, match="found mode RGBA"):
        read_rgb(_png(np.dstack([ref, ref[..., :1]]), tmp_path / "rgba.png"))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert decode_png_rgb8(truncated.read_bytes()) is None
    with pytest.raises(DatasetError, match="cannot read image"):
        read_rgb(truncated)


def test_hr_cache_decodes_each_hr_once_within_its_budget(tmp_path, monkeypatch):
    from cirbench.evaluation import loading

    calls: list[str] = []

    def fake_read(path):
        calls.append(Path(path).stem)
        return np.zeros((4, 5, 3), np.uint8)

    class FakeDataset:
        def hr_path(self, stem):
            return tmp_path / f"{stem}.png"

    monkeypatch.setattr(loading, "read_rgb", fake_read)
    cache = loading.HRCache(budget=2 * 60)  # room for two 4x5x3 images
    for _task in range(3):
        for stem in ("a", "b", "c"):
            image = cache.read(FakeDataset(), stem)
            assert image.shape == (4, 5, 3)
    assert calls == ["a", "b", "c", "c", "c"]  # a and b were kept, c did not fit and is decoded every time
    assert cache.used == 120
    with pytest.raises(ValueError):
        cache.read(FakeDataset(), "a")[0, 0, 0] = 1  # kept arrays are read-only


def test_range_check_shortcut_only_for_clean_outputs():
    from cirbench.evaluation.model_guard import CallSite, RangeCheck
    from cirbench.models import ModelError

    clean = RangeCheck.of(torch.rand(1, 3, 8, 8))
    assert clean.known_in_range and clean.verdict(CallSite("m", "d", "t", ("x",))) == 0
    out = torch.rand(1, 3, 8, 8)
    out[0, 0, 0, 0] = 1.002  # within the tolerance: clamped and counted
    slow = RangeCheck.of(out)
    assert not slow.known_in_range and slow.verdict(CallSite("m", "d", "t", ("x",))) == 1
    out[0, 1, 2, 3] = float("nan")
    with pytest.raises(ModelError, match="NaN"):
        RangeCheck.of(out).verdict(CallSite("m", "d", "t", ("x",)))
