"""HiFiC: key schema of the port's checkpoints, strict loading of a seeded random file in the canonical layout,
encode/decode through a real rANS bitstream, and parity with the port's evaluation forward pass.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cirbench.codecs import create_codec
from cirbench.codecs import hific as hific_codec
from cirbench.codecs._base import pad_edge
from cirbench.codecs._hific_model import HificNetwork
from cirbench.errors import CodecError, CodecUnavailable, ConfigError

SHARED = Path(__file__).resolve().parents[2] / "shared"
SCHEMA = json.loads((SHARED / "reference" / "hific_state_dict_keys.json").read_text())
KODIM = SHARED / "data" / "kodak" / "kodim19.png"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def seeded_network(seed: int) -> HificNetwork:
    """Default torch init plus the port's density init (H from init_scale 10, b ~ U(-1/2, 1/2)), seeded."""
    torch.manual_seed(seed)
    net = HificNetwork().eval()
    density = net.Hyperprior.hyperlatent_likelihood
    widths, scale = (1, 3, 3, 3, 1), 10.0 ** (1 / 4)
    with torch.no_grad():
        for k in range(4):
            getattr(density, f"H_{k}").fill_(math.log(math.expm1(1 / scale / widths[k + 1])))
            getattr(density, f"b_{k}").uniform_(-0.5, 0.5)
    return net


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HificNetwork]:
    """hific_low.pt's layout: model_state_dict (148 core + 20 discriminator entries), args, optimizer states."""
    net = seeded_network(2020)
    state = dict(net.state_dict())
    generator = torch.Generator().manual_seed(1)
    for key, shape, _ in SCHEMA["discriminator"]["keys"]:
        state[key] = torch.randn(shape, generator=generator)
    args = {"likelihood_type": "gaussian", "normalize_input_image": True, "n_residual_blocks": 9,
            "latent_channels": 220, "use_channel_norm": True, "regime": "low", "image_dims": (3, 256, 256)}
    checkpoint = {"model_state_dict": state, "args": args, "epoch": 1, "steps": 2,
                  "hyperprior_optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]}}
    path = tmp_path_factory.mktemp("hific") / "hific-random-seed2020.pt"
    torch.save(checkpoint, path)
    return path, net


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(KODIM).convert("RGB"))[300:390, 200:330].copy()  # 90x130: pads to 96x144


def port_forward(net: HificNetwork, rgb: np.ndarray) -> np.ndarray:
    """The port's evaluation-mode reconstruction (no entropy coding), written out independently."""
    x = torch.from_numpy(pad_edge(rgb, 16).transpose(2, 0, 1).astype(np.float32) / 255.0)[None] * 2 - 1
    with torch.no_grad():
        y = net.Encoder(x)
        y = F.pad(y, (0, (-y.shape[3]) % 4, 0, (-y.shape[2]) % 4), mode="reflect")
        z_hat = torch.floor(net.Hyperprior.analysis_net(y) + 0.5)
        means = net.Hyperprior.synthesis_mu(z_hat)
        y_hat = torch.floor(y - means + 0.5) + means
        out = (torch.tanh(net.Generator(y_hat)) + 1) / 2
    pixels = torch.floor(out.clamp(0, 1) * 255 + 0.5)[0].permute(1, 2, 0).numpy().astype(np.uint8)
    return pixels[: rgb.shape[0], : rgb.shape[1]]


def test_network_keys_shapes_dtypes_match_the_port_schema() -> None:
    with torch.device("meta"):
        net = HificNetwork()
    state = net.state_dict()
    assert [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()] == [
        (k, s, d) for k, s, d in SCHEMA["keys"]
    ]
    assert len(state) == SCHEMA["num_keys"] == 148
    for part, count in SCHEMA["num_params_by_submodule"].items():
        if part != "Discriminator":
            module = net.get_submodule(part)
            assert sum(p.numel() for p in module.parameters()) == count, part
    assert {k for k, _, _ in SCHEMA["discriminator"]["keys"]} == hific_codec.DISCRIMINATOR_KEYS


def test_canonical_layout_loads_strictly_and_decodes_like_the_port(random_checkpoint, crop: np.ndarray) -> None:
    path, net = random_checkpoint
    codec = create_codec("hific", level="low", checkpoint=str(path))
    codec.check_available()
    loaded = codec.model()
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[key], value), key
    assert loaded.likelihood_type == "gaussian" and loaded.normalize_input_image
    result = codec.roundtrip(crop)
    assert result.decoded.shape == crop.shape and (result.padded_height, result.padded_width) == (96, 144)
    np.testing.assert_array_equal(result.decoded, port_forward(net, crop))  # the entropy coder is lossless
    assert result.stats["latent_shape"] == [8, 12]  # 6x9 latents reflect-padded to multiples of 4
    again = create_codec("hific", level="low", checkpoint=str(path)).encode(crop)
    assert again == result.bitstream  # byte-identical
    bits = 8 * len(result.bitstream)
    assert 0.5 * result.stats["estimated_bits"] < bits < 1.5 * result.stats["estimated_bits"] + 8000


def test_images_below_the_port_minimum_are_padded(random_checkpoint, crop: np.ndarray) -> None:
    path, _ = random_checkpoint
    codec = create_codec("hific", checkpoint=str(path))
    tiny = crop[:40, :50].copy()
    result = codec.roundtrip(tiny)
    assert result.decoded.shape == tiny.shape


def test_checkpoint_schema_violations_are_rejected(tmp_path: Path) -> None:
    shapes = {key: shape for key, shape, _ in SCHEMA["keys"]}
    core = {key: torch.zeros(shape) for key, shape in shapes.items() if not key.startswith("Generator.resblock")}
    core |= {key: torch.zeros(1) for key in shapes if key.startswith("Generator.resblock")}  # keeps files small
    torch.save(core, tmp_path / "shapes.pt")
    with pytest.raises(CodecError, match="size mismatch for Generator.resblock_0.conv1.weight"):
        create_codec("hific", checkpoint=str(tmp_path / "shapes.pt")).model()
    missing = dict(core)
    missing.pop("Generator.resblock_8.norm2.beta")
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CodecError, match="resblock_8.norm2.beta"):
        create_codec("hific", checkpoint=str(tmp_path / "missing.pt")).model()
    half = dict(core) | {"Encoder.conv_block1.1.bias": torch.zeros(60, dtype=torch.float16)}
    torch.save(half, tmp_path / "half.pt")
    with pytest.raises(CodecError, match="float32"):
        create_codec("hific", checkpoint=str(tmp_path / "half.pt")).model()
    odd = dict(core) | {"Discriminator.conv9.weight": torch.zeros(1)}
    torch.save({"model_state_dict": odd, "args": {}}, tmp_path / "odd.pt")
    with pytest.raises(CodecError, match="discriminator"):
        create_codec("hific", checkpoint=str(tmp_path / "odd.pt")).model()


def test_level_defaults_and_checkpoint_args() -> None:
    core, args = hific_codec.split_checkpoint({"model_state_dict": {"a": 1}, "args": {"likelihood_type": "gaussian"}})
    assert core == {"a": 1} and args == {"likelihood_type": "gaussian"}
    assert hific_codec._settings("med", {}) == ("logistic", False, 9)
    assert hific_codec._settings("high", {}) == ("gaussian", True, 9)
    assert hific_codec._settings("med", {"likelihood_type": "gaussian", "normalize_input_image": True})[:2] == ("gaussian", True)
    with pytest.raises(CodecError):
        hific_codec._settings("low", {"sample_noise": True})


@pytest.mark.parametrize("level,filename", [("low", "hific_low.pt"), ("med", "hific_med.pt"), ("high", "hific_hi.pt")])
def test_missing_canonical_files_name_the_file_and_the_import_command(level: str, filename: str) -> None:
    codec = create_codec("hific", level=level)
    assert codec.parameters() == {"level": level, "checkpoint": "", "device": "cpu"}
    with pytest.raises(CodecUnavailable) as info:
        codec.check_available()
    assert filename in str(info.value) and f"cirbench weights import /path/to/{filename}" in str(info.value)


def test_bad_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        create_codec("hific", level="medium")
