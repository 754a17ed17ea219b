"""SSP-IR end to end on CPU without downloads: prompts, checkpoint folders (strict, named keys, the release's broken
final save), guidance skip, tiles, seeding, colour fix, `evaluate --model sspir`, `train sspir` with exact resume.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers", reason="SSP-IR needs diffusers (the sspir extra)")
pytest.importorskip("transformers", reason="SSP-IR needs transformers (the sspir extra)")

from test_evaluate import CIRBENCH, offline_weights, tiny, tiny_master  # noqa: E402, F401

from cirbench.errors import ConfigError  # noqa: E402
from cirbench.models import ModelError, load_model  # noqa: E402
from cirbench.models.sspir.colour_fix import adain, colour_fix, wavelet  # noqa: E402
from cirbench.models.sspir.sspir_checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from cirbench.models.sspir.sspir_prompts import encode_ids, negative_ids, prompt_ids  # noqa: E402
from cirbench.models.sspir.sspir_tiny import tiny_parts, tiny_tokenizer  # noqa: E402
from cirbench.training.config import load_config  # noqa: E402
from cirbench.training.trainer import train  # noqa: E402
from cirbench.weights.layouts import check_file, expected_layout  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "cirbench" / "models" / "sspir" / "sspir.train.toml"


@pytest.fixture(scope="module")
def model():
    return load_model("sspir", config="tiny", steps=3)


@pytest.mark.parametrize(("words", "length"), [(0, 77), (10, 77), (75, 77), (76, 152), (200, 227), (400, 302)])
def test_long_prompts_are_padded_to_chunks_of_75_tokens(words: int, length: int) -> None:
    tokenizer = tiny_tokenizer()
    ids = prompt_ids(tokenizer, [" ".join(["a"] * words)])
    assert ids.shape == (1, length)
    assert ids[0, 0] == tokenizer.bos_token_id and ids[0, -1] == tokenizer.eos_token_id
    assert negative_ids(tokenizer, [""], length).shape == (1, length)


def test_without_tokenizer_files_the_empty_prompt_has_sd15s_ids_and_text_is_refused() -> None:
    from cirbench.models.sspir.sspir_towers import EmptyPromptTokenizer

    real, known = tiny_tokenizer(), EmptyPromptTokenizer()
    for tokenizer in (real, known):
        ids = prompt_ids(tokenizer, [""])
        assert ids.tolist() == [[tokenizer.bos_token_id] + [tokenizer.eos_token_id] * 76]
        assert torch.equal(negative_ids(tokenizer, [""], 77), ids)
    assert known.bos_token_id == 49406 and known.eos_token_id == 49407
    with pytest.raises(ModelError, match="need SD-1.5's tokenizer: pass -O sd15=DIR"):
        prompt_ids(known, ["a photo"])


def test_chunked_encoding_drops_the_middle_bos_and_eos() -> None:
    nets, parts, _ = tiny_parts()
    tokenizer, encoder = parts["tokenizer"], parts["text_encoder"]
    ids = prompt_ids(tokenizer, [" ".join(["b"] * 100)])
    with torch.no_grad():
        joined = encode_ids(encoder, ids)
        first, second = ids[:, :77].clone(), ids[:, 75:].clone()
        first[:, -1], second[:, 0] = ids[0, -1], ids[0, 0]
        expected = torch.cat([encoder(first)[0][:, :-1], encoder(second)[0][:, 1:]], dim=1)
    assert joined.shape == (1, 152, 32)
    torch.testing.assert_close(joined, expected)


def test_the_empty_prompt_makes_guidance_a_no_op_and_the_unconditional_pass_is_skipped(model) -> None:
    pipeline = model.pipeline
    lq = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(3))
    pipeline.calls = {"unet": 0, "controlnet": 0}
    skipped = model.restore(lq, None)
    assert pipeline.calls["unet"] == 3  # one image, three steps, no unconditional pass
    real_text = pipeline.text
    pipeline.text = lambda prompts: (real_text(prompts)[0], real_text(prompts)[0])  # force the CFG arithmetic
    try:
        pipeline.calls = {"unet": 0, "controlnet": 0}
        guided = model.restore(lq, None)
    finally:
        pipeline.text = real_text
    assert pipeline.calls["unet"] == 6
    torch.testing.assert_close(skipped, guided, atol=1e-5, rtol=0)
    assert pipeline.text([""])[1] is None
    negative = replace(pipeline.settings, negative_prompt="blur")
    pipeline.settings, kept = negative, pipeline.settings
    try:
        assert pipeline.text([""])[1] is not None
    finally:
        pipeline.settings = kept


def test_seeded_sampling_is_deterministic_and_independent_of_batching(model) -> None:
    lq = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    together = model.restore(lq, None)
    again = model.restore(lq, None)
    alone = torch.cat([model.restore(lq[i : i + 1], None) for i in (2, 0, 1)])[[1, 2, 0]]
    assert torch.equal(together, again)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    assert (together[0] - together[1]).abs().max() > 1e-3


def test_tiles_agree_with_one_pass_where_one_tile_covers_and_large_images_run(model) -> None:
    p = model.pipeline
    g = torch.Generator().manual_seed(0)
    latents, lq = torch.randn(1, 4, 8, 8, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        cond, uncond = p.text([""])
        image = p.image_tokens(lq)
        whole = p._guided(latents, 981, cond, uncond, lq, image)
        tiled = p.tiled(latents, 981, cond, uncond, lq, image)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-5)
    p.settings, kept = replace(p.settings, latent_tile=8, latent_overlap=2, vae_tile=64), p.settings
    try:
        big = torch.rand(1, 3, 96, 136, generator=g)
        out = model.restore(big, None)
    finally:
        p.settings = kept
    assert out.shape == big.shape and torch.isfinite(out).all()


def test_colour_fixes_move_the_colour_statistics_to_the_input() -> None:
    g = torch.Generator().manual_seed(0)
    out, lq = torch.rand(1, 3, 40, 48, generator=g), torch.rand(1, 3, 40, 48, generator=g) * 0.5 + 0.2
    fixed = adain(out, lq)
    torch.testing.assert_close(fixed.mean((2, 3)), lq.mean((2, 3)))
    torch.testing.assert_close(fixed.std((2, 3)), lq.std((2, 3)), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(wavelet(lq, lq), lq, atol=1e-6, rtol=0)  # high band + low band = the image
    assert colour_fix(out * 3, lq, "none").max() <= 1


def _tiny_checkpoint(folder: Path) -> Path:
    nets, _, _ = tiny_parts(seed=4)
    return save_checkpoint(folder, nets.unet, nets.controlnet, nets.refine)


def test_a_checkpoint_folder_round_trips_strictly_and_names_every_bad_key(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = _tiny_checkpoint(tmp_path / "checkpoint-7")
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "controlnet/config.json", "controlnet/diffusion_pytorch_model.safetensors", "refine/refine.pt",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]  # fmt: skip
    config = json.loads((folder / "unet" / "config.json").read_text())
    assert config["_class_name"] == "UNet2DConditionModel" and config["use_image_cross_attention"] is True
    loaded = load_checkpoint(folder)
    nets, _, _ = tiny_parts(seed=4)
    ours, theirs = loaded.unet.state_dict(), nets.unet.state_dict()
    assert list(ours) == list(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    weights = folder / "controlnet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    good = dict(state)
    state.pop("controlnet_cond_embedding.to_rgbs.2.bias")
    state["extra.weight"] = torch.zeros(1)
    state["controlnet_mid_block.weight"] = torch.zeros(1, 1, 1, 1)
    save_file(state, weights)
    with pytest.raises(ModelError) as error:
        load_checkpoint(folder)
    message = str(error.value)
    assert "controlnet_cond_embedding.to_rgbs.2.bias" in message and "extra.weight" in message
    assert "controlnet_mid_block.weight" in message and "missing" in message and "mis-shaped" in message
    save_file(load_file(folder / "unet" / "diffusion_pytorch_model.safetensors"), weights)  # a U-Net in controlnet/
    with pytest.raises(ModelError, match="holds a U-Net, not a ControlNet: the release's final save"):
        load_checkpoint(folder)
    save_file(good, weights)
    assert load_checkpoint(folder).controlnet is not None


def test_the_release_final_save_folder_is_named_as_such(tmp_path: Path) -> None:
    folder = _tiny_checkpoint(tmp_path / "ckpt")
    final = tmp_path / "output_dir"
    final.mkdir()
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copy(folder / "unet" / name, final / name)
    with pytest.raises(ModelError, match="UNet2DConditionModel config.json and no controlnet/.*overwrote the ControlNet"):
        load_checkpoint(final)
    with pytest.raises(ModelError, match=r"missing refine/refine.pt"):
        shutil.rmtree(folder / "refine")
        load_checkpoint(folder)


def test_weights_check_knows_the_sspir_files(tmp_path: Path) -> None:
    assert len(expected_layout("sspir-unet").tensors) == 1414
    assert len(expected_layout("sspir-controlnet").tensors) == 528
    assert len(expected_layout("sd15-unet.safetensors").tensors) == 1414 - 416 - 312
    folder = _tiny_checkpoint(tmp_path / "c")
    assert check_file(folder / "refine" / "refine.pt", "sspir-refine.pt").ok  # TPBNet is full size even when tiny
    report = check_file(folder / "unet" / "diffusion_pytorch_model.safetensors", "sspir-unet")
    assert not report.ok and report.missing and report.mismatched


def test_without_weights_one_line_says_what_is_missing_and_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        load_model("sspir")
    text = str(error.value)
    assert "checkpoint-N folder" in text and "cirbench train sspir" in text and "sd15-vae.safetensors" in text
    assert "config=tiny" in text and "\n" not in text


def test_evaluate_runs_sspir_end_to_end_and_it_is_not_a_result(tiny: Path, tmp_path: Path) -> None:
    captions = tmp_path / "captions"
    captions.mkdir()
    for stem in ("img0", "img1", "img2"):
        (captions / f"{stem}.txt").write_text(f"a photo\nof {stem}")
    run = subprocess.run([str(CIRBENCH), "evaluate", str(tiny), "--model", "sspir", "-O", "config=tiny",
                          "-O", "steps=2", "-O", f"captions={captions}", "--tasks", "JPEG_10", "--metrics", "psnr"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    records = list((tiny / "results").rglob("record.json"))
    assert records, run.stdout
    record = json.loads(records[0].read_text())
    assert record["is_result"] is False and "seeded random weights" in record["not_a_result"]
    model = load_model("sspir", config="tiny", steps=1, captions=str(captions))
    model.on_batch(["img0", "img9"])
    with pytest.raises(ModelError, match="no img9.txt"):
        model.restore(torch.rand(2, 3, 32, 32), None)
    model.on_batch(["img1"])
    assert model.prompts(1) == ["a photo of img1"]


def test_training_resumes_exactly_and_its_checkpoint_loads_into_sspir(tiny: Path, tmp_path: Path) -> None:
    config = load_config(RECIPE).with_overrides(steps=3, batch_size=1, crop_size=32, checkpoint_every=1)
    config = replace(config, model_options={**config.model_options, "config": "tiny"})
    with pytest.raises(ConfigError, match="--init is not supported"):
        train("sspir", tiny, config=config, out=tmp_path / "x", init_checkpoint="some.safetensors")
    whole = train("sspir", tiny, config=config, out=tmp_path / "whole")
    train("sspir", tiny, config=config, out=tmp_path / "split", stop_after=2)
    resumed = train("sspir", tiny, config=config, out=tmp_path / "split", resume=True)
    assert len(whole.history.loss) == 3 and resumed.history.loss == whole.history.loss
    assert whole.final_weights == tmp_path / "whole" / "checkpoint-3"
    assert sorted(p.name for p in (tmp_path / "whole").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    restored = load_model("sspir", config="tiny", checkpoint=str(whole.final_weights), steps=1)
    assert restored.info.not_a_result == "tiny configuration"
    trained = load_checkpoint(whole.final_weights)
    untrained, _, _ = tiny_parts(seed=0)
    frozen = "conv_in.weight"
    assert torch.equal(trained.unet.state_dict()[frozen], untrained.unet.state_dict()[frozen])  # stock part frozen
    key = "up_blocks.1.pixel_attentions.0.proj_out.weight"
    assert not torch.equal(trained.unet.state_dict()[key], untrained.unet.state_dict()[key])  # attentions trained
