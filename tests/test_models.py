"""Model API: registry and module:factory lookup, built-in methods, padding and tiling, safe checkpoints."""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_rgb, shared
from PIL import Image

from cirbench.dataset.reader import to_tensor
from cirbench.errors import ConfigError, UnknownNameError
from cirbench.models import MODELS, ModelError, load_model
from cirbench.models.checkpoints import (
    CheckpointError,
    StrictLoadError,
    UnsafeCheckpointError,
    load_state_dict,
    load_strict,
    save_state_dict,
)
from cirbench.models.tiling import pad_to_multiple, restore_any_size, tile_starts

TOY_SRC = Path(__file__).resolve().parent / "toy_plugin" / "src"


@pytest.fixture()
def toy_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TOY_SRC))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_builtin_models_are_registered_and_typos_get_suggestions() -> None:
    assert {"identity", "tv-chambolle"} <= set(MODELS.names())
    with pytest.raises(UnknownNameError, match="did you mean 'identity'"):
        load_model("identiy")
    with pytest.raises(UnknownNameError, match="cannot import module"):
        load_model("no_such_module_xyz:factory")
    with pytest.raises(ModelError, match="no option.* strength .*its options: weight, eps, max_num_iter"):
        load_model("tv-chambolle", strength=3)


def test_identity_returns_its_input_and_refuses_a_checkpoint() -> None:
    model = load_model("identity")
    lq = torch.rand(2, 3, 9, 11)
    assert torch.equal(model.restore(lq, None), lq)
    assert model.info.needs_task_label is False
    with pytest.raises(ModelError):
        load_model("identity", checkpoint="x.pt")


def test_module_factory_spec_loads_a_model_outside_the_registry(toy_on_path: None) -> None:
    model = load_model("cirbench_toy_plugin:create_pointwise", scale=0.5, offset=0.25)
    lq = torch.full((1, 3, 4, 4), 0.25)
    assert torch.equal(model.restore(lq, None), torch.full_like(lq, 0.5))
    with pytest.raises(UnknownNameError, match="has no attribute"):
        load_model("cirbench_toy_plugin:missing_factory")


def test_tv_chambolle_is_deterministic_and_reduces_jpeg_error() -> None:
    hr = load_rgb(shared("kodak", "kodim05.png"))[200:296, 300:428]
    buffer = io.BytesIO()
    Image.fromarray(hr).save(buffer, format="JPEG", quality=10)
    lq = np.asarray(Image.open(buffer).convert("RGB"))
    model = load_model("tv-chambolle")
    first = model.restore(to_tensor(lq), None)
    second = model.restore(to_tensor(lq), None)
    assert torch.equal(first, second)
    restored = first[0].permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()
    assert _psnr(hr, restored) > _psnr(hr, lq) + 0.1
    assert "weight=0.02" in model.info.description


def test_padding_reflects_to_the_multiple_and_crops_back() -> None:
    image = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    padded, size = pad_to_multiple(image, 4)
    assert padded.shape[-2:] == (8, 8) and size == (5, 7)
    assert torch.equal(padded[..., 5, :7], image[..., 3, :])  # reflect: row 5 mirrors row 3
    seen = []

    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[-2:]))
        return x * 2

    out = restore_any_size(record, image, multiple=4)
    assert seen == [(8, 8)] and torch.equal(out, image * 2)


@pytest.mark.parametrize(("size", "tile", "overlap", "multiple"), [((37, 53), 16, 5, 1), ((64, 40), 16, 8, 8), ((23, 90), 32, 31, 1)])
def test_tiling_with_overlap_equals_untiled_for_a_pointwise_model(size, tile, overlap, multiple) -> None:
    torch.manual_seed(0)
    image = torch.rand(2, 3, *size)

    def pointwise(x: torch.Tensor) -> torch.Tensor:
        # correctly rounded ops only: transcendental kernels (sigmoid, pow) may differ by one ulp between the
        # vectorised body and the scalar tail of a tensor, i.e. with the tensor's shape, tiled or not
        return torch.sqrt(x) * 0.75 + x * x * 0.25

    untiled = restore_any_size(pointwise, image, multiple=multiple)
    tiled = restore_any_size(pointwise, image, multiple=multiple, tile=tile, overlap=overlap)
    assert torch.equal(tiled, untiled)
    assert len(tile_starts(size[1] + (-size[1]) % multiple, tile, overlap)) > 1


def test_tiling_blends_a_conv_net_close_to_untiled_and_checks_arguments(toy_on_path: None) -> None:
    model = load_model("cirbench_toy_plugin:create_conv", seed=3)
    image = torch.rand(1, 3, 40, 52)
    untiled = restore_any_size(lambda x: model.restore(x, None), image, multiple=4)
    tiled = restore_any_size(lambda x: model.restore(x, None), image, multiple=4, tile=16, overlap=8)
    assert (tiled - untiled).abs().max() < 0.05  # 3x3 receptive field: only tile seams differ, and little
    with pytest.raises(ConfigError, match="multiple"):
        restore_any_size(lambda x: x, image, multiple=4, tile=18, overlap=2)
    with pytest.raises(ConfigError, match="overlap"):
        restore_any_size(lambda x: x, image, tile=16, overlap=16)


def test_safetensors_and_wrapped_torch_checkpoints_round_trip(tmp_path: Path, toy_on_path: None) -> None:
    model = load_model("cirbench_toy_plugin:create_conv", seed=1)
    state = model.network.state_dict()
    save_state_dict(state, tmp_path / "w.safetensors", metadata={"note": "test"})
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        loaded = load_state_dict(tmp_path / name)
        assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    other = load_model("cirbench_toy_plugin:create_conv", checkpoint=str(tmp_path / "w.pt"), seed=2)
    lq = torch.rand(1, 3, 8, 8)
    assert torch.equal(other.restore(lq, None), model.restore(lq, None))


def test_strict_load_names_missing_unexpected_and_mismatched_keys(toy_on_path: None) -> None:
    network = load_model("cirbench_toy_plugin:create_conv").network
    state = dict(network.state_dict())
    state.pop("body.0.bias")
    state["extra.weight"] = torch.zeros(1)
    state["body.2.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(StrictLoadError) as error:
        load_strict(network, state)
    message = str(error.value)
    assert "body.0.bias" in message and "extra.weight" in message and "body.2.weight" in message


class _WritesAFile:
    """Unpickling this calls open(target, 'w'): a stand-in for a malicious checkpoint payload."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_malicious_checkpoint_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"
    torch.save({"weight": torch.zeros(2), "payload": _WritesAFile(target)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_state_dict(tmp_path / "evil.pt")
    assert not target.exists()
    # control, without running it: the pickle really calls open(target, "w") when unpickled unrestricted
    with zipfile.ZipFile(tmp_path / "evil.pt") as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    opcodes = [(op.name, arg) for op, arg, _ in pickletools.genops(pickled)]
    assert ("GLOBAL", "builtins open") in opcodes or ("GLOBAL", "io open") in opcodes
    assert any(name == "REDUCE" for name, _ in opcodes) and any(arg == str(target) for _, arg in opcodes)


def test_unreadable_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00\x01")
    for name in ("junk.pt", "junk.safetensors", "missing.pt"):
        with pytest.raises(CheckpointError):
            load_state_dict(tmp_path / name)
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pt")
    with pytest.raises(CheckpointError, match="no state dict"):
        load_state_dict(tmp_path / "no_tensors.pt")
