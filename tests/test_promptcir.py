"""PromptCIR: the official raw state-dict layout loads strictly and round-trips, bad checkpoints name their keys,
and the models restore images of any size through the official protocol (with its small-image failures fixed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cirbench.models import ModelInfo, load_model
from cirbench.models.blocks.mirror_tiling import MirrorTiling, ensemble, run_padded
from cirbench.models.checkpoints import StrictLoadError, load_state_dict, save_state_dict
from cirbench.models.promptcir import (
    OFFICIAL_WEIGHTS,
    SMALL_CONFIG,
    SMALL_WEIGHTS,
    PromptCIRConfig,
    PromptCIRModel,
    PromptCIRNet,
    WeightsNotShipped,
    load_promptcir_weights,
)
from cirbench.models.promptcir.promptcir_models import _checkpoint_paths
from cirbench.weights.importer import import_weight

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "promptcir_state_dict_keys.json"
TINY = PromptCIRConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2),
                       window_size=8, squeeze_factor=4, prompt_basis=(4, 4, 4), prompt_dims=(8, 8, 8))  # fmt: skip


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def reference_keys() -> dict[str, tuple[tuple[int, ...], str]]:
    if not REFERENCE.is_file():
        pytest.fail(f"reference key list missing: {REFERENCE}")
    record = json.loads(REFERENCE.read_text())
    return {name: (tuple(shape), dtype) for name, shape, dtype in record["keys"]}


@pytest.fixture(scope="module")
def official_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A raw state dict in the official layout (torch.save of the dict, like model_best.pth), seeded random."""
    torch.manual_seed(1234)
    state = PromptCIRNet().state_dict()
    generator = torch.Generator().manual_seed(99)
    for tensor in state.values():
        if tensor.is_floating_point():  # every weight non-trivial: a key loaded into the wrong place shows
            tensor.add_(0.02 * torch.randn(tensor.shape, generator=generator))
    path = tmp_path_factory.mktemp("official") / "model_best.pth"
    torch.save(state, path)
    return path, state


def test_official_architecture_matches_the_reference_state_dict() -> None:
    network = PromptCIRNet()
    got = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in network.state_dict().items()}
    assert got == reference_keys()
    assert len(got) == 870
    assert sum(p.numel() for p in network.parameters()) == 34_754_927


def test_official_checkpoint_loads_strictly_and_round_trips(official_checkpoint, tmp_path: Path) -> None:
    path, state = official_checkpoint
    model = load_model("promptcir", checkpoint=str(path))
    assert model.info.version == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert all(torch.equal(model.network.state_dict()[k], state[k]) for k in state)
    again = tmp_path / "roundtrip.safetensors"
    save_state_dict(model.network.state_dict(), again)
    saved = load_state_dict(again)
    assert saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in state)
    load_promptcir_weights(model.network, again)  # strict again, from our own format
    with torch.no_grad():  # one small forward of the official size: output of the input's size, not the input
        out = model.network.eval()(torch.full((1, 3, 32, 32), 0.5))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all() and not torch.allclose(out, out.new_full((), 0.5))


def test_raw_layout_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(7)
    source = PromptCIRNet(TINY)
    torch.save(source.state_dict(), tmp_path / "model_best.pth")  # the official raw layout
    loaded = PromptCIRNet(TINY)
    load_promptcir_weights(loaded, tmp_path / "model_best.pth")
    save_state_dict(loaded.state_dict(), tmp_path / "again.safetensors")
    reloaded = PromptCIRNet(TINY)
    load_promptcir_weights(reloaded, tmp_path / "again.safetensors")
    image = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = source.eval()(image)
        assert torch.equal(loaded.eval()(image), expected)
        assert torch.equal(reloaded.eval()(image), expected)
    assert not torch.allclose(expected, image, atol=1e-3)


def test_missing_and_unexpected_keys_are_named(official_checkpoint, tmp_path: Path) -> None:
    _, state = official_checkpoint
    missing = {k: v for k, v in state.items() if k != "latent.3.attn.temperature"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(StrictLoadError, match=r"missing keys \(1\): latent\.3\.attn\.temperature"):
        load_model("promptcir", checkpoint=str(tmp_path / "missing.pth"))
    extra = {**state, "prompt4.prompt": torch.zeros(3)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(StrictLoadError, match=r"unexpected keys \(1\): prompt4\.prompt"):
        load_model("promptcir", checkpoint=str(tmp_path / "extra.pth"))
    wrong = {**state, "output.weight": torch.zeros(3, 48, 3, 3)}
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(StrictLoadError, match=r"mis-shaped keys \(1\): output\.weight \[3, 48, 3, 3\] float32 \(expected \[3, 96, 3, 3\] float32\)"):
        load_model("promptcir", checkpoint=str(tmp_path / "wrong.pth"))
    as_float = {**state, "relative_position_index_SA": state["relative_position_index_SA"].float()}
    torch.save(as_float, tmp_path / "float_index.pth")
    with pytest.raises(StrictLoadError, match=r"wrong dtype kind: relative_position_index_SA \(torch.float32\)"):
        load_model("promptcir", checkpoint=str(tmp_path / "float_index.pth"))


def test_tolerated_variants_module_prefix_and_missing_index_buffers(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = PromptCIRNet(TINY)
    state = {f"module.{k}": v for k, v in source.state_dict().items() if "relative_position_index" not in k}
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    target = PromptCIRNet(TINY)
    load_promptcir_weights(target, tmp_path / "wrapped.pth")
    assert all(
        torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values(), strict=True)
    )


def tiny_model(protocol: MirrorTiling | None = None) -> PromptCIRModel:
    torch.manual_seed(0)
    info = ModelInfo(name="promptcir-tiny", version="test", needs_task_label=False, trainable=True)
    return PromptCIRModel(info, [PromptCIRNet(TINY)], protocol or MirrorTiling())


@pytest.mark.parametrize("size", [(1, 1), (30, 40), (70, 200), (30, 500)])
def test_restore_any_size_returns_the_input_size(size: tuple[int, int]) -> None:
    # (30, 40) gave all-NaN output and (70, 200) a ValueError in the official script; (30, 500) needs 2 tiles
    model = tiny_model(MirrorTiling(transpose_ensemble=size == (30, 40)))
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1))
    out = model.restore(image, None)
    assert out.shape == image.shape
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, image)


def test_network_rejects_sizes_it_cannot_window() -> None:
    network = PromptCIRNet(TINY)
    assert network.size_multiple == 16 and PromptCIRNet().size_multiple == 32
    with pytest.raises(ValueError, match="multiples of 16"):
        network(torch.rand(1, 3, 24, 32))


def test_untiled_protocol_equals_padded_network_output() -> None:
    model = tiny_model(MirrorTiling(multiple=16, strictly_greater=False, tile=None, transpose_ensemble=False))
    image = torch.rand(1, 3, 20, 30, generator=torch.Generator().manual_seed(2))
    padded = torch.from_numpy(np.pad(image.numpy(), ((0, 0), (0, 0), (0, 12), (0, 2)), mode="symmetric"))
    with torch.no_grad():
        expected = model.network.eval()(padded)[..., :20, :30].clamp(0, 1)
    assert torch.equal(model.restore(image, None), expected)


def test_small_model_configuration_and_missing_packaged_weights() -> None:
    assert sum(p.numel() for p in PromptCIRNet(SMALL_CONFIG).parameters()) == 4_576_005
    untrained = load_model("promptcir-s", init="random")
    assert untrained.info.label == "PromptCIR small architecture, untrained"  # never labelled as the retrain
    assert not untrained.info.is_result and untrained.info.not_a_result == "untrained (random initialisation)"
    assert untrained.info.trainable and not untrained.info.needs_task_label
    if SMALL_WEIGHTS.is_file():
        assert load_model("promptcir-s").info.version != "untrained"
    else:
        with pytest.raises(WeightsNotShipped, match="not shipped yet.*cirbench train promptcir-s"):
            load_model("promptcir-s")


def test_official_weights_come_from_checkpoint_or_the_cache(official_checkpoint, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsNotShipped, match="drive.google.com.*--checkpoint model_best.pth"):
        load_model("promptcir")
    assert [w.filename for w in OFFICIAL_WEIGHTS] == ["promptcir_model_best.pth", "promptcir_model_best2.pth"]
    assert not any(w.has_checksum for w in OFFICIAL_WEIGHTS)  # the authors published no digest
    path, state = official_checkpoint
    renamed = tmp_path / OFFICIAL_WEIGHTS[0].filename
    shutil.copyfile(path, renamed)
    import_weight(renamed)
    model = load_model("promptcir")  # found in the cache, unverified
    assert len(model.networks) == 1 and "cache" in model.info.label
    assert torch.equal(model.network.state_dict()["output.weight"], state["output.weight"])


def test_ensemble_averages_every_network_and_its_transpose_pass() -> None:
    image = torch.rand(1, 3, 20, 36, generator=torch.Generator().manual_seed(4))
    column = torch.linspace(0, 0.5, 64).view(1, 1, 1, 64)

    def first(x: torch.Tensor) -> torch.Tensor:  # not transpose-symmetric: depends on the column index
        return x * 0.5 + column[..., : x.shape[-1]]

    def second(x: torch.Tensor) -> torch.Tensor:
        return 1.2 * x - 0.1

    protocol = MirrorTiling(transpose_ensemble=True)
    single = MirrorTiling(transpose_ensemble=False)
    passes = [run_padded(f, image, single) for f in (first, second)]
    passes += [run_padded(f, image.transpose(-2, -1), single).transpose(-2, -1) for f in (first, second)]
    expected = torch.stack([p.clamp(0, 1) for p in passes]).mean(0)
    torch.testing.assert_close(ensemble([first, second], image, protocol), expected, rtol=0, atol=1e-6)
    assert not torch.allclose(passes[0], passes[2])  # the transposed pass really differs


def test_two_official_checkpoints_can_be_named_in_one_option() -> None:
    assert _checkpoint_paths("model_best.pth,model_best2.pth", None) == ["model_best.pth", "model_best2.pth"]
    assert _checkpoint_paths("a.pth", "b.pth") == ["a.pth", "b.pth"]
    assert _checkpoint_paths("a.pth", None) == ["a.pth"]
