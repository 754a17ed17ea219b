"""CompressAI codec: real compress()/decompress() bitstreams, padding, determinism, strict loading, offline errors.

Uses the tiny trained fixture (tests/fixtures) and a seeded random Cheng2020 saved in the zoo's key layout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from compressai.zoo import image as zoo_image

from cirbench.codecs import CODECS, create_codec
from cirbench.codecs import compressai as cai
from cirbench.codecs._learned import pack_bitstream, unpack_bitstream
from cirbench.errors import CodecError, CodecUnavailable, ConfigError
from cirbench.weights.manager import catalogue

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures" / "tiny-factorized-cirbench.pth.tar"
KODIM = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim23.png"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No downloads and an empty torch-hub cache, whatever this machine holds."""
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    cai._VERIFIED.clear()


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(KODIM).convert("RGB"))[140:240, 300:450].copy()  # 100x150: not a multiple of 64


def tiny_codec() -> cai.CompressaiCodec:
    return create_codec("compressai", model="bmshj2018-factorized", checkpoint=str(TINY), quality=1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_registered_as_learned_codec_with_recorded_variant() -> None:
    assert "compressai" in CODECS.names()
    codec = create_codec("compressai", metric="ms-ssim", quality=2)
    assert codec.kind == "learned" and codec.size_multiple == 64
    assert codec.parameters() == {
        "model": "cheng2020-anchor", "metric": "ms-ssim", "quality": 2, "checkpoint": "", "device": "cpu",
    }
    assert codec.zoo_filename() == "cheng2020_anchor-ms-ssim-2-c7ff5812.pth.tar"


def test_cheng2020_catalogue_matches_installed_compressai_zoo() -> None:
    files = catalogue()
    for (arch, metric), stems in cai.CHENG2020_FILES.items():
        urls = zoo_image.model_urls[arch][metric]
        assert [f"{s}.pth.tar" for s in stems] == [urls[q].rsplit("/", 1)[1] for q in range(1, 7)]
        for quality, stem in enumerate(stems, start=1):
            spec = files[f"{stem}.pth.tar"]
            assert spec.url == urls[quality]
            assert spec.sha256_prefix == stem[-8:]


@pytest.mark.parametrize(
    "options",
    [
        {"metric": "psnr"},
        {"quality": 7},  # Cheng2020 has 6 zoo qualities
        {"quality": 0},
        {"model": "cheng2021"},
        {"device": "tpu"},
        {"bogus": 1},
    ],
)
def test_bad_options_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError):
        create_codec("compressai", **options)


def test_missing_zoo_weights_name_the_file_and_the_import_command() -> None:
    codec = create_codec("compressai", model="cheng2020-attn", metric="mse", quality=3)
    with pytest.raises(CodecUnavailable) as info:
        codec.check_available()
    message = str(info.value)
    assert "cheng2020_attn-mse-3-2d07bbdf.pth.tar" in message
    assert "cirbench weights import /path/to/cheng2020_attn-mse-3-2d07bbdf.pth.tar" in message
    assert "https://compressai.s3.amazonaws.com/models/v1/cheng2020_attn-mse-3-2d07bbdf.pth.tar" in message


def test_zoo_weights_in_the_cache_are_verified_and_used(tmp_path: Path) -> None:
    from cirbench.weights.manager import cache_dir

    name = "cheng2020-anchor-1-dad2ebff.pth.tar"
    (cache_dir()).mkdir(parents=True, exist_ok=True)
    (cache_dir() / name).write_bytes(b"not the real file")
    with pytest.raises(CodecUnavailable, match="sha256"):
        create_codec("compressai", quality=1).check_available()


def test_tiny_model_roundtrip_pads_crops_and_compresses(crop: np.ndarray) -> None:
    codec = tiny_codec()
    codec.check_available()
    result = codec.roundtrip(crop)
    assert result.decoded.shape == crop.shape and result.decoded.dtype == np.uint8
    assert (result.padded_height, result.padded_width) == (128, 192)
    shape, strings = unpack_bitstream(result.bitstream, cai.MAGIC)
    assert shape == (8, 12) and len(strings) == 1  # factorized prior: one string for y at 1/16 of the padded size
    bpp = 8 * len(result.bitstream) / (crop.shape[0] * crop.shape[1])
    assert 0.05 < bpp < 2.0
    assert psnr(crop, result.decoded) > 18.0  # a real (if small) trained codec, not noise
    assert psnr(crop, result.decoded) < 45.0  # and lossy


def test_bitstream_is_compressai_own_compress_output(crop: np.ndarray) -> None:
    from compressai.models import FactorizedPrior

    from cirbench.codecs._base import pad_edge

    reference = FactorizedPrior.from_state_dict(torch.load(TINY, weights_only=True)).eval()
    padded = pad_edge(crop, 64)
    x = torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    with torch.no_grad():
        out = reference.compress(x)
        x_hat = reference.decompress(out["strings"], out["shape"])["x_hat"]
    expected = pack_bitstream(cai.MAGIC, tuple(out["shape"]), [out["strings"][0][0]])
    codec = tiny_codec()
    assert codec.encode(crop) == expected
    want = np.floor(x_hat[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(codec.decode(expected), want)


def test_byte_identical_across_runs_and_processes(crop: np.ndarray, tmp_path: Path) -> None:
    first = tiny_codec().roundtrip(crop)
    cai._NETWORKS.clear()
    second = tiny_codec().roundtrip(crop)
    assert first.bitstream == second.bitstream
    np.testing.assert_array_equal(first.decoded, second.decoded)
    np.save(tmp_path / "crop.npy", crop)
    script = (
        "import sys, numpy as np; from cirbench.codecs import create_codec; "
        f"c = create_codec('compressai', model='bmshj2018-factorized', checkpoint={str(TINY)!r}, quality=1); "
        f"sys.stdout.write(c.encode(np.load({str(tmp_path / 'crop.npy')!r})).hex())"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert bytes.fromhex(other.stdout) == first.bitstream


def test_tool_versions_record_library_and_weights_digest() -> None:
    versions = tiny_codec().tool_versions()
    info = json.loads(TINY.with_suffix("").with_suffix(".json").read_text())
    assert versions["weights"] == TINY.name and versions["weights_sha256"] == info["sha256"]
    assert versions["compressai"] and versions["torch"] == torch.__version__


def test_damaged_bitstreams_are_codec_errors(crop: np.ndarray) -> None:
    codec = tiny_codec()
    data = codec.encode(crop)
    with pytest.raises(CodecError, match="magic"):
        codec.decode(b"XX" + data[2:])
    with pytest.raises(CodecError, match="truncated"):
        codec.decode(data[:-5])
    with pytest.raises(CodecError, match="trailing"):
        codec.decode(data + b"\0")


def test_missing_local_checkpoint_is_unavailable(tmp_path: Path) -> None:
    codec = create_codec("compressai", checkpoint=str(tmp_path / "absent.pth.tar"))
    with pytest.raises(CodecUnavailable, match="absent.pth.tar"):
        codec.check_available()
