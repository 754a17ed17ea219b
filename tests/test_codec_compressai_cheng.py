"""Cheng2020 (anchor, attn) with seeded random weights in the zoo's key layout: strict loading and parity with
CompressAI's own compress()/decompress() (cirbench's faster autoregressive loops must give the same bytes and pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from compressai.zoo import cheng2020_anchor, cheng2020_attn

from cirbench.codecs import compressai as cai
from cirbench.codecs import create_codec
from cirbench.codecs._base import pad_edge
from cirbench.codecs._learned import pack_bitstream
from cirbench.errors import CodecError

KODIM = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "kodim05.png"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def seeded(factory, seed: int):
    torch.manual_seed(seed)
    net = factory(quality=1).eval()
    net.update(force=True)
    return net


@pytest.fixture(scope="module")
def anchor_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    net = seeded(cheng2020_anchor, 7)
    path = tmp_path_factory.mktemp("cheng") / "cheng2020-anchor-seed7.pth.tar"
    torch.save(net.state_dict(), path)  # the zoo files are plain state dicts with the same keys
    return path, net


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(KODIM).convert("RGB"))[200:270, 300:380].copy()  # 70x80 -> padded 128x128


@pytest.fixture(autouse=True)
def _one_thread(torch_one_thread) -> None:
    """cirbench's loops run single-threaded; the reference must too, or float sums differ in the last bit."""


def reference_roundtrip(net, rgb: np.ndarray) -> tuple[bytes, np.ndarray]:
    """CompressAI's unmodified compress()/decompress() on the 64-padded image, packed like cirbench does."""
    x = torch.from_numpy(pad_edge(rgb, 64).transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    with torch.no_grad():
        out = net.compress(x)
        x_hat = net.decompress(out["strings"], out["shape"])["x_hat"]
    data = pack_bitstream(cai.MAGIC, tuple(out["shape"]), [s[0] for s in out["strings"]])
    pixels = np.floor(x_hat[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    return data, pixels[: rgb.shape[0], : rgb.shape[1]]


def test_strict_load_and_identical_bytes_and_pixels_to_compressai(anchor_file, crop: np.ndarray) -> None:
    path, net = anchor_file
    codec = create_codec("compressai", model="cheng2020-anchor", metric="mse", quality=1, checkpoint=str(path))
    loaded = codec.network()
    assert loaded._decompress_ar.__func__ is not type(loaded)._decompress_ar  # cirbench's faster loop is in use
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    result = codec.roundtrip(crop)
    expected_bytes, expected_pixels = reference_roundtrip(net, crop)
    assert result.bitstream == expected_bytes
    np.testing.assert_array_equal(result.decoded, expected_pixels)
    assert len(result.bitstream) > 20 and result.stats["latent_shape"] == [2, 2]
    assert codec.roundtrip(crop).bitstream == result.bitstream  # deterministic


def test_attention_variant_roundtrips(tmp_path: Path, crop: np.ndarray) -> None:
    net = seeded(cheng2020_attn, 11)
    path = tmp_path / "cheng2020-attn-seed11.pth.tar"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)  # CompressAI's training-checkpoint layout
    codec = create_codec("compressai", model="cheng2020-attn", quality=1, checkpoint=str(path))
    small = crop[:64, :64].copy()
    result = codec.roundtrip(small)
    expected_bytes, expected_pixels = reference_roundtrip(net, small)
    assert result.bitstream == expected_bytes
    np.testing.assert_array_equal(result.decoded, expected_pixels)


def test_strict_loading_rejects_missing_and_foreign_keys(anchor_file, tmp_path: Path) -> None:
    path, net = anchor_file
    state = dict(net.state_dict())
    state.pop("context_prediction.bias")
    broken = tmp_path / "missing.pth.tar"
    torch.save(state, broken)
    with pytest.raises(CodecError, match="context_prediction.bias"):
        create_codec("compressai", checkpoint=str(broken), quality=1).network()
    state = dict(net.state_dict()) | {"extra.weight": torch.zeros(1)}
    foreign = tmp_path / "foreign.pth.tar"
    torch.save(state, foreign)
    with pytest.raises(CodecError, match="extra.weight"):
        create_codec("compressai", checkpoint=str(foreign), quality=1).network()


def test_wrong_architecture_for_a_checkpoint_is_a_codec_error(anchor_file) -> None:
    path, _ = anchor_file
    with pytest.raises(CodecError, match="does not match"):
        create_codec("compressai", model="bmshj2018-hyperprior", checkpoint=str(path), quality=1).network()
