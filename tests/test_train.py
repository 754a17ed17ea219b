"""`cirbench train`: the loop trains, checkpoints, resumes to the same loss sequence as an uninterrupted run,
and its pieces (config, schedule, crops, split, losses, CLI) behave as documented. Tiny models, CPU only.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cirbench.cli import main
from cirbench.dataset.reader import BuiltDataset, read_rgb
from cirbench.errors import ConfigError
from cirbench.models import ModelError, ModelInfo, load_model
from cirbench.models.blocks.mirror_tiling import MirrorTiling
from cirbench.models.checkpoints import load_state_dict
from cirbench.models.promptcir import PromptCIRConfig, PromptCIRModel, PromptCIRNet
from cirbench.tasks import Task
from cirbench.training.config import TrainConfig, config_from_mapping, load_config
from cirbench.training.data import PairedCrops, split_pairs
from cirbench.training.losses import resolve_loss
from cirbench.training.state import ResumeError
from cirbench.training.trainer import _amp_setup as amp_setup
from cirbench.training.trainer import lr_at, train

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
TINY = PromptCIRConfig(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 2, 2),
                       window_size=8, squeeze_factor=4, prompt_basis=(4, 4, 4), prompt_dims=(8, 8, 8))  # fmt: skip
TASKS = [
    Task(name=f"JPEG_{q}", folder=f"JPEG_{q}", codec="jpeg", family="jpeg", level=q, params={"quality": q})
    for q in (10, 40)
]
SMALL = dict(steps=3, batch_size=2, crop_size=32, lr=1e-3, warmup_steps=1, val_images=1, val_every=2,
             val_crop=32, checkpoint_every=0, seed=5)  # fmt: skip


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built-dataset layout (HR/, JPEG_10/, JPEG_40/, build.json) from 48x48 Kodak crops, made with Pillow."""
    root = tmp_path_factory.mktemp("built") / "kodak-tiny"
    (root / "HR").mkdir(parents=True)
    for index, stem in enumerate(("kodim01", "kodim03", "kodim05", "kodim07")):
        path = KODAK / f"{stem}.png"
        if not path.is_file():
            pytest.fail(f"shared test image missing: {path}")
        box = (200 + 16 * index, 150, 248 + 16 * index, 198)
        hr = Image.open(path).convert("RGB").crop(box)
        hr.save(root / "HR" / f"{stem}.png")
        for task in TASKS:
            (root / task.folder).mkdir(exist_ok=True)
            _jpeg_round_trip(hr, int(task.level)).save(root / task.folder / f"{stem}.png")
    build = {
        "dataset": "kodak-tiny",
        "taskset": {"name": "tiny", "sha256": "", "tasks": [t.as_record() for t in TASKS]},
    }
    (root / "build.json").write_text(json.dumps(build))
    return root


def tiny_model(seed: int = 0) -> PromptCIRModel:
    torch.manual_seed(seed)
    info = ModelInfo(name="promptcir-tiny", version="test", needs_task_label=False, trainable=True)
    return PromptCIRModel(info, [PromptCIRNet(TINY)], MirrorTiling(multiple=16, transpose_ensemble=False))


def test_interrupted_and_resumed_run_repeats_the_uninterrupted_losses(built: Path, tmp_path: Path) -> None:
    config = TrainConfig(**SMALL)
    full = train(tiny_model(), built, config=config, out=tmp_path / "full")
    assert full.finished and full.steps_done == 3 and len(full.history.loss) == 3
    assert all(math.isfinite(v) for v in full.history.loss)
    part = train(tiny_model(), built, config=config, out=tmp_path / "part", stop_after=2)
    assert not part.finished and part.final_weights is None
    assert json.loads((tmp_path / "part" / "latest.json").read_text())["step"] == 2
    resumed = train(tiny_model(seed=123), built, config=config, out=tmp_path / "part", resume=True)
    assert resumed.finished and resumed.steps_done == 3
    assert resumed.history.loss == full.history.loss  # exactly, step by step
    assert resumed.history.lr == full.history.lr
    assert [v["psnr"] for v in resumed.history.val] == [v["psnr"] for v in full.history.val]
    a, b = load_state_dict(full.final_weights), load_state_dict(resumed.final_weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["output.weight"], tiny_model().network.state_dict()["output.weight"])  # it trained


def test_validation_reports_psnr_per_task_on_held_out_images(built: Path, tmp_path: Path) -> None:
    result = train(tiny_model(), built, config=TrainConfig(**{**SMALL, "steps": 2}), out=tmp_path / "run")
    (record,) = result.history.val  # val_every=2: once, at the end
    assert record["step"] == 2 and set(record["tasks"]) == {"JPEG_10", "JPEG_40"}
    jpeg10, jpeg40 = record["tasks"]["JPEG_10"], record["tasks"]["JPEG_40"]
    assert 15 < jpeg10["psnr_input"] < jpeg40["psnr_input"] < 60  # the input scores rank the codec levels
    assert math.isfinite(record["psnr"])
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["loss"] == result.history.loss


def test_resume_refuses_a_changed_configuration_and_a_fresh_start_refuses_an_existing_run(
    built: Path, tmp_path: Path
) -> None:
    config = TrainConfig(**{**SMALL, "steps": 2})
    train(tiny_model(), built, config=config, out=tmp_path / "run", stop_after=1)
    with pytest.raises(ResumeError, match=r"changed since the run started: config\.lr \(0\.001 -> 0\.0005\)"):
        train(tiny_model(), built, config=config.with_overrides(lr=5e-4), out=tmp_path / "run", resume=True)
    with pytest.raises(ResumeError, match="--resume"):
        train(tiny_model(), built, config=config, out=tmp_path / "run")
    with pytest.raises(ResumeError, match="nothing to resume"):
        train(tiny_model(), built, config=config, out=tmp_path / "empty", resume=True)


def test_split_holds_out_whole_images_and_crops_are_aligned(built: Path) -> None:
    dataset = BuiltDataset.open(built)
    split = split_pairs(dataset, None, val_images=1, seed=5, crop=32)
    assert len(split.val) == 2 and {p.stem for p in split.val} == set(split.val_stems)
    assert not {p.stem for p in split.train} & set(split.val_stems) and len(split.train) == 6
    crops = PairedCrops(split.train, crop=32, seed=5, augment=False, length=10)
    for index in range(4):
        lq, hr = crops[index]
        again = crops[index]
        assert torch.equal(lq, again[0]) and torch.equal(hr, again[1])  # sample g depends only on (seed, g)
        rng = np.random.default_rng([5, index])
        pair = split.train[int(rng.integers(len(split.train)))]
        top, left = int(rng.integers(48 - 32 + 1)), int(rng.integers(48 - 32 + 1))
        expected_lq = read_rgb(pair.lq)[top : top + 32, left : left + 32]
        assert torch.equal((lq * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(expected_lq))
        expected_hr = read_rgb(pair.hr)[top : top + 32, left : left + 32]
        assert torch.equal((hr * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(expected_hr))
    with pytest.raises(ConfigError, match="leaves no training image"):
        split_pairs(dataset, None, val_images=4, seed=5, crop=32)
    with pytest.raises(ConfigError, match="at least crop_size=64"):
        split_pairs(dataset, None, val_images=1, seed=5, crop=64)


def test_learning_rate_warms_up_then_decays_to_the_minimum() -> None:
    config = TrainConfig(steps=100, lr=1e-3, min_lr=1e-5, warmup_steps=10)
    rates = [lr_at(s, config) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3) and rates[10] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
    assert lr_at(100, config) == pytest.approx(1e-5)


def test_config_file_errors_name_the_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[train]\nsteps = 7\nlr = 1\nloss = "mse"\n[model]\ntile = 256\n')
    config = load_config(good)
    assert (config.steps, config.lr, config.loss, config.model_options) == (7, 1.0, "mse", {"tile": 256})
    with pytest.raises(ConfigError, match="unknown \\[train\\] key\\(s\\): stepz"):
        config_from_mapping({"stepz": 3})
    with pytest.raises(ConfigError, match="batch_size has the wrong type"):
        config_from_mapping({"batch_size": "8"})
    with pytest.raises(ConfigError, match="amp must be one of"):
        config_from_mapping({"amp": "fp8"})
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        amp_setup("bf16", torch.device("cpu"))
    assert amp_setup("auto", torch.device("cpu")) == (None, None)  # AMP only on CUDA


def test_losses_by_name_and_by_import_path() -> None:
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert float(resolve_loss("l1")(a, b)) == pytest.approx(0.5)
    assert float(resolve_loss("mse")(a, b)) == pytest.approx(0.25)
    assert float(resolve_loss("torch.nn.functional:smooth_l1_loss")(a, b)) == pytest.approx(0.125)
    with pytest.raises(ConfigError, match="unknown loss 'l3'"):
        resolve_loss("l3")


def test_untrainable_models_are_refused(built: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not trainable"):
        train("identity", built, config=TrainConfig(**SMALL), out=tmp_path / "id")


def test_cli_trains_stops_resumes_and_the_result_loads(built: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[train]\nsteps = 2\nbatch_size = 1\ncrop_size = 16\nwarmup_steps = 1\nval_images = 1\nval_crop = 16\n"
        'val_every = 0\nseed = 1\nexport_dtype = "float16"\n[model]\ntile = 0\n'
    )
    out = tmp_path / "run"
    args = ["train", "promptcir-s", "--data", str(built), "--config", str(config), "--out", str(out)]
    assert main([*args, "--stop-after", "1"]) == 0
    assert not (out / "final.safetensors").exists()
    assert main(args) == 1  # an existing run is not overwritten without --resume
    assert main([*args, "--resume", "--tasks", "JPEG_10,JPEG_40"]) == 1  # different tasks: refused
    assert main([*args, "--resume"]) == 0
    weights = load_state_dict(out / "final.safetensors")
    assert weights["output.weight"].dtype == torch.float16
    model = load_model("promptcir-s", checkpoint=str(out / "final.safetensors"))
    assert model.info.label == "cirbench retrain (not the paper's weights)"
    assert model.restore(torch.rand(1, 3, 20, 24), None).shape == (1, 3, 20, 24)
