"""MoE-DiffIR: official layouts vs the manifests, strict Lightning loading, routing, sampler, geometry, evaluate."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared
from PIL import Image

from cirbench.cli import main
from cirbench.diffusion.kl_autoencoder import KLAutoencoder
from cirbench.diffusion.samplers import SamplerSettings, ldm_buffers
from cirbench.errors import CirbenchError, ConfigError
from cirbench.evaluation.protocols import get_protocol
from cirbench.models import ModelError, load_model
from cirbench.models.moediffir import official
from cirbench.models.moediffir.clip_towers import daclip_quirk
from cirbench.models.moediffir.network import MoEDiffIRNet, tiny_config
from cirbench.models.moediffir.routing import ExpertPrompts
from cirbench.tasks import load_taskset
from cirbench.weights.lightning import UnsafeCheckpoint

REFERENCE = shared("..", "reference")
MANIFESTS = {
    "N7_K3.ckpt": "moediffir_only_moe_prompt_state_dict_keys.json",
    "MoE-DiffIR_DACLIP.ckpt": "moediffir_daclip_state_dict_keys.json",
    "Decoder_Finetuned.ckpt": "moediffir_decoder_finetuned_state_dict_keys.json",
    "v2-1_512-ema-pruned.ckpt": "sd21_v2-1_512-ema-pruned_state_dict_keys.json",
}
TASKS = {task.name: task for task in load_taskset("moe-diffir-21").tasks}
UNSEEN = {task.name: task for task in load_taskset("unseen").tasks}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_weights_keys_prints_the_manifest_layout(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "keys", name]) == 0
    printed = {r["key"]: (r["shape"], r["dtype"]) for r in [json.loads(line) for line in capsys.readouterr().out.splitlines()]}
    manifest = json.loads((REFERENCE / MANIFESTS[name]).read_text())
    assert printed == {e["key"]: (e["shape"], e["dtype"]) for e in manifest["keys"]}
    assert len(printed) == manifest["num_keys"]


def _lightning_module() -> type:
    """A class under pytorch_lightning's name, as the callbacks dict of a Lightning 1.4 checkpoint holds."""
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
    cls = type("ModelCheckpoint", (), {"__module__": module.__name__})
    module.ModelCheckpoint = cls
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[module.__name__] = module
    return cls


def _save_lightning(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save({"state_dict": state, "epoch": 3, "global_step": 20000, "pytorch-lightning_version": "1.4.2",
                "callbacks": {_lightning_module(): {"best_model_score": np.float64(0.5)}}}, path)  # fmt: skip
    return path


def _official_like(variant: str, seed: int = 0) -> tuple[MoEDiffIRNet, dict[str, torch.Tensor]]:
    """A tiny net with nonzero gates, and the state dict the release would hold for it (buffers, issue-7 extras)."""
    torch.manual_seed(seed)
    net = MoEDiffIRNet(tiny_config(variant)).eval()
    for name, param in net.named_parameters():
        if "f_gate" in name:
            torch.nn.init.normal_(param, std=0.5)
    state = dict(net.state_dict())
    state.update({k: torch.from_numpy(v.astype(np.float32)) for k, v in ldm_buffers(SamplerSettings().base_schedule()).items()})
    if variant == "daclip":
        state.update({key: torch.zeros(3) for key in official.RELEASED_EXTRA_KEYS})
    return net, state


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("moe")
    files = {}
    for variant in ("daclip", "prompt"):
        net, state = _official_like(variant)
        files[variant] = _save_lightning(state, root / f"{variant}.ckpt")
    torch.manual_seed(1)
    vae = KLAutoencoder(tiny_config("prompt").fusion_vae)
    files["decoder"] = _save_lightning({**vae.state_dict(), "loss.logvar": torch.zeros(())}, root / "decoder.ckpt")
    return files


def _tiny(name: str, files: dict[str, Path], **options) -> object:
    variant = "daclip" if name == "moe-diffir" else "prompt"
    return load_model(name, checkpoint=str(files[variant]), decoder=str(files["decoder"]), config="tiny", steps=3, **options)


def test_a_tiny_lightning_checkpoint_loads_strictly_and_round_trips_through_convert(tiny_files, tmp_path) -> None:
    model = _tiny("moe-diffir", tiny_files)
    source, _ = _official_like("daclip")
    loaded = model.pipeline.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    weights = model.info.details["weights"]
    assert weights[0]["tolerated_keys"] == sorted(official.RELEASED_EXTRA_KEYS)
    assert weights[0]["schedule_buffers_checked"] == 12 and weights[0]["aliased_keys_checked_equal"] > 0
    assert weights[1]["tolerated_keys"] == ["loss.logvar"]
    lq = torch.rand(1, 3, 64, 64)
    before = model.restore(lq, TASKS["HEVC_47"])

    out = tmp_path / "converted.safetensors"
    layout = official.layout_for(official.DACLIP_FILE, tiny_config("daclip"))
    official.convert(tiny_files["daclip"], out, layout)
    again = load_model("moe-diffir", checkpoint=str(out), decoder=str(tiny_files["decoder"]), config="tiny", steps=3)
    converted = again.pipeline.net.state_dict()
    assert all(torch.equal(converted[k], v) for k, v in loaded.items())  # the weights round-trip bit for bit
    # the same weights in differently aligned memory (mmap'd .ckpt vs safetensors) may pick other SIMD kernels
    # (torch 2.14 on this CPU: 8e-7 apart), so the outputs are compared at float32 rounding
    assert torch.allclose(again.restore(lq, TASKS["HEVC_47"]), before, rtol=0, atol=1e-5)

    _, state = _official_like("daclip")
    half = {k: v.half() if v.is_floating_point() and k not in official.SCHEDULE_KEYS else v for k, v in state.items()}
    stored_fp16 = _save_lightning(half, tmp_path / "fp16.ckpt")
    model16 = load_model("moe-diffir", checkpoint=str(stored_fp16), decoder=str(tiny_files["decoder"]), config="tiny", steps=3)
    assert model16.info.details["weights"][0]["cast_to_float32"]["float16"] > 100
    assert next(model16.pipeline.net.parameters()).dtype == torch.float32


def _expect_named(state: dict[str, torch.Tensor], tmp_path: Path, *needles: str) -> None:
    path = _save_lightning(state, tmp_path / "broken.ckpt")
    with pytest.raises(official.OfficialWeightsError) as info:
        official.checked_state(path, official.layout_for(official.DACLIP_FILE, tiny_config("daclip")))
    for needle in needles:
        assert needle in str(info.value)


def test_one_missing_unexpected_misshaped_or_unequal_key_is_named(tmp_path: Path) -> None:
    _, state = _official_like("daclip")
    key = "structcond_stage_model.Prompt_model2.prompt_param"
    _expect_named({k: v for k, v in state.items() if k != key}, tmp_path, "missing", key)
    _expect_named({**state, "cond_stage_model.adapter3.weight": torch.zeros(1)}, tmp_path, "unexpected", "adapter3")
    _expect_named({**state, key: torch.zeros(7, 32, 31)}, tmp_path, "mis-shaped", key)
    alias = "structcond_stage_model.DACLIP_model.visual.ln_pre.weight"
    _expect_named({**state, alias: state[alias] + 1}, tmp_path, alias)
    _expect_named({**state, "betas": state["betas"] * 2}, tmp_path, "betas")


def test_a_checkpoint_with_a_pickled_payload_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hyper_parameters": Payload()}, path)
    with pytest.raises(UnsafeCheckpoint, match="refused unread"):
        official.read_state(path)
    assert main(["weights", "check", str(path), "--as", "N7_K3.ckpt"]) == 1
    assert "refused" in capsys.readouterr().err and not marker.exists()


def test_respaced_timesteps_and_betas_equal_a_direct_computation() -> None:
    schedule = SamplerSettings(steps=200).schedule()
    expected_steps = [round(i * 999 / 199) for i in range(200)]
    assert list(schedule.timesteps) == expected_steps and expected_steps[-1] == 999
    abar = np.cumprod(1 - np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2)
    kept = abar[expected_steps]
    direct = 1 - kept / np.append(1.0, kept[:-1])
    np.testing.assert_allclose(schedule.betas, direct, rtol=1e-12)
    assert schedule.betas[0] == pytest.approx(0.00085)


def test_seeded_sampling_is_deterministic_and_depends_on_the_seed(tiny_files) -> None:
    lq = torch.rand(2, 3, 64, 64)
    first = _tiny("moe-diffir-prompt", tiny_files)
    a, b = first.restore(lq, TASKS["JPEG_10"]), first.restore(lq, TASKS["JPEG_10"])
    alone = torch.cat([first.restore(lq[i : i + 1], TASKS["JPEG_10"]) for i in range(2)])
    torch.testing.assert_close(alone, a, atol=1e-5, rtol=0)  # each image has its own noise: batching changes nothing
    other = _tiny("moe-diffir-prompt", tiny_files, seed=7).restore(lq, TASKS["JPEG_10"])
    ddim = _tiny("moe-diffir-prompt", tiny_files, sampler="ddim").restore(lq, TASKS["JPEG_10"])
    assert torch.equal(a, b) and a.shape == lq.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.allclose(a, other) and not torch.allclose(a, ddim)


def test_routing_picks_3_of_7_experts_per_token_and_depends_on_the_task() -> None:
    torch.manual_seed(0)
    experts = ExpertPrompts(tiny_config("prompt").prompt)
    for gate in experts.f_gate:
        torch.nn.init.normal_(gate[0].weight, std=1.0)
    tokens = torch.randn(2, 64, 32)
    choices = {}
    for task in (0, 6, 20):
        out = experts(tokens, [task, task], generator=torch.Generator().manual_seed(5))
        choices[task] = experts.route(tokens, [task, task], torch.Generator().manual_seed(5))[1]
        assert out.shape == tokens.shape
    choice = choices[0]
    assert choice.shape == (2, 64, 3) and int(choice.min()) >= 0 and int(choice.max()) <= 6
    assert all(len(set(row.tolist())) == 3 for row in choice.reshape(-1, 3))
    assert not torch.equal(choices[0], choices[6]) and not torch.equal(choices[6], choices[20])
    # the output is the gate-weighted sum of the chosen experts' products
    gates, picked = experts.route(tokens, [6, 6], torch.Generator().manual_seed(5))
    manual = sum(gates[0, 3, k] * tokens[0, 3] @ experts.prompt_param[picked[0, 3, k]] for k in range(3))
    out = experts(tokens, [6, 6], generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out[0, 3], manual)


def test_the_daclip_reshape_and_normalisation_quirk_is_pinned() -> None:
    tokens = torch.arange(1, 13, dtype=torch.float32).reshape(1, 4, 3)  # 4 tokens (2x2 grid) of 3 channels
    out = daclip_quirk(tokens, 2)
    # memory order reread as [C=3, 2, 2]: rows (1,2) (3,4) | (5,6) (7,8) | (9,10) (11,12), each row L2-normalised
    rows = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]], dtype=torch.float32)
    normed = (rows / rows.norm(dim=1, keepdim=True)).reshape(3, 4)
    torch.testing.assert_close(out[0], normed.T)
    assert out.shape == (1, 4, 3)


def test_unseen_tasks_refuse_in_one_line_unless_mapped_and_the_map_is_recorded(tiny_files) -> None:
    model = _tiny("moe-diffir-prompt", tiny_files)
    with pytest.raises(ModelError, match="task_map=JPEG_5:JPEG_10"):
        model.task_id(UNSEEN["JPEG_5"])
    mapped = _tiny("moe-diffir-prompt", tiny_files, task_map="JPEG_5:JPEG_10, AVC_37:HEVC_37")
    assert mapped.task_id(UNSEEN["JPEG_5"]) == 0 and mapped.task_id(UNSEEN["AVC_37"]) == 8
    assert mapped.info.details["task_map"] == {"JPEG_5": "JPEG_10", "AVC_37": "HEVC_37"}
    assert mapped.info.needs_task_label
    with pytest.raises(ModelError, match="no MoE-DiffIR id"):
        _tiny("moe-diffir-prompt", tiny_files, task_map="JPEG_5:JPEG_99")
    with pytest.raises(ModelError, match="CUDA autocast"):
        _tiny("moe-diffir-prompt", tiny_files, precision="fp16")
    pipeline = _tiny("moe-diffir-prompt", tiny_files).pipeline
    pipeline.settings = replace(pipeline.settings, precision="bf16")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        pipeline.restore(torch.rand(1, 3, 64, 64), [0])


def test_missing_official_weights_name_the_file_and_what_to_do(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"needs N7_K3\.ckpt and Decoder_Finetuned\.ckpt.*links are dead.*"
                                          r"cirbench weights import.*cirbench weights convert.*config=tiny"):
        load_model("moe-diffir-prompt")  # every missing file at once, what works, how to use a copy


def test_resize256_is_the_release_geometry_and_crop256_stays_exact() -> None:
    rgb = np.asarray(Image.open(shared("kodak", "kodim01.png")).convert("RGB"))[:300, :420]
    region = get_protocol("resize256").region(rgb)
    step1 = np.asarray(Image.fromarray(rgb).resize((416, 288), Image.Resampling.LANCZOS)).astype(np.float64)
    # torchvision 0.13's tensor Resize(256): bilinear, half-pixel centres, no antialiasing; 288x416 -> 256x369
    rows, cols = (np.arange(256) + 0.5) * 288 / 256 - 0.5, (np.arange(369) + 0.5) * 416 / 369 - 0.5
    rows, cols = np.clip(rows, 0, None), np.clip(cols, 0, None)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, 287), np.minimum(c0 + 1, 415)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    top = step1[r0][:, c0] * (1 - fc) + step1[r0][:, c1] * fc
    bottom = step1[r1][:, c0] * (1 - fc) + step1[r1][:, c1] * fc
    expected = np.round(top * (1 - fr) + bottom * fr)[:, 56:312]
    assert region.shape == (256, 256, 3) and np.abs(region.astype(int) - expected).max() <= 1
    assert get_protocol("resize256").region_shape(300, 420) == (256, 256)
    crop = get_protocol("crop256").region(rgb)
    np.testing.assert_array_equal(crop, rgb[16:272, 80:336])


def test_evaluate_runs_both_models_end_to_end_and_records_the_sampler(tiny_files, tmp_path, capsys) -> None:
    from test_evaluate import SMALL_CROPS, build_tiny

    dataset = build_tiny(tmp_path, SMALL_CROPS)
    for name, variant in (("moe-diffir", "daclip"), ("moe-diffir-prompt", "prompt")):
        code = main(["evaluate", str(dataset), "-m", name, "--checkpoint", str(tiny_files[variant]),
                     "-O", f"decoder={tiny_files['decoder']}", "-O", "config=tiny", "-O", "steps=2",
                     "--metrics", "psnr,ssim", "--batch", "2"])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        (record_path,) = (dataset / "results" / "runs").glob(f"{name}_*/record.json")
        record = json.loads(record_path.read_text())
        assert record["mode"] == "oracle" and record["status"] == "complete"
        assert record["tasks_complete"] == ["JPEG_10", "JPEG_30", "WEBP_5"]
        details = record["model"]["details"]
        assert details["sampler"] == {"method": "ddpm", "steps": 2, "train_steps": 1000, "linear_start": 0.00085,
                                      "linear_end": 0.012}  # fmt: skip
        assert details["seed"] == 42 and len(details["weights"]) == 2 and record["tile"] == 64
        scores = (record_path.parent / "scores.csv").read_text()
        assert scores.count(",psnr,") >= 9


def test_every_catalogue_file_has_a_layout_and_convert_names_a_mismatch(tiny_files, tmp_path, capsys) -> None:
    from cirbench.weights.layouts import has_layout
    from cirbench.weights.manager import catalogue

    assert set(MANIFESTS) <= set(catalogue()) and all(has_layout(name) for name in catalogue())
    out = tmp_path / "x.safetensors"
    assert main(["weights", "convert", str(tiny_files["prompt"]), "--as", "N7_K3.ckpt", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "does not match the expected layout" in err and "mis-shaped" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_convert_of_a_file_without_its_own_converter_checks_the_layout_and_keeps_only_its_tensors(tmp_path, monkeypatch) -> None:
    from safetensors.torch import load_file

    from cirbench.weights import layouts
    from cirbench.weights.convert import convert_file

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    layout = layouts.module_layout(net, container=("state_dict",), optional=frozenset({"ema"}))
    monkeypatch.setitem(layouts._BUILDERS, "toy-convert.pth", lambda: layout)
    source = _save_lightning({**net.state_dict(), "ema": torch.zeros(2)}, tmp_path / "toy-convert.pth")
    target, report = convert_file(source)
    written = load_file(str(target))
    assert set(written) == set(net.state_dict()) and report["tolerated_keys"] == ["ema"]
    assert all(torch.equal(written[k], v) for k, v in net.state_dict().items())
    broken = _save_lightning({k: v for k, v in net.state_dict().items() if k != "0.bias"}, tmp_path / "x.pth")
    with pytest.raises(CirbenchError, match=r"missing keys \(1\): 0.bias"):
        convert_file(broken, tmp_path / "x.safetensors", "toy-convert.pth")
