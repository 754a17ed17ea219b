"""`cirbench evaluate`: plugin models end to end, oracle task ids, crop256, resume after a kill, skipped metrics."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, shared, write_taskset
from PIL import Image

from cirbench.build.builder import BuildOptions, build_dataset
from cirbench.cli import main
from cirbench.dataset.reader import BuiltDataset, read_rgb
from cirbench.evaluation.evaluate import EvaluationSettings, evaluate
from cirbench.evaluation.protocols import Box, ProtocolError, crop256_box
from cirbench.evaluation.results import SCORE_COLUMNS, ResultsError
from cirbench.models import ModelError, ModelInfo
from cirbench.tasks import load_taskset

TOY = REPO / "tests" / "toy_plugin"
CIRBENCH = Path(sys.executable).with_name("cirbench")
TASKS = [
    {"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "id": 0, "params": {"quality": 10}},
    {"name": "JPEG_30", "codec": "jpeg", "family": "JPEG", "level": 30, "id": 1, "params": {"quality": 30}},
    {"name": "WEBP_5", "codec": "webp", "family": "WEBP", "level": 5, "id": 10, "params": {"quality": 5}},
]


def build_tiny(root: Path, crops: list[tuple[str, str, tuple[int, int, int, int]]], tasks=TASKS) -> Path:
    """Build a dataset with the real builder from crops (set, file, box) of the shared test images."""
    source = root / "src"
    source.mkdir(parents=True)
    for index, (folder, name, box) in enumerate(crops):
        Image.open(shared(folder, name)).convert("RGB").crop(box).save(source / f"img{index}.png")
    taskset = write_taskset(root / "tiny.toml", tasks)
    build_dataset(BuildOptions(out=root / "out", source=source, taskset=str(taskset), name="tiny"))
    return root / "out" / "tiny"


SMALL_CROPS = [
    ("kodak", "kodim01.png", (100, 100, 164, 148)),
    ("kodak", "kodim05.png", (200, 120, 264, 168)),
    ("live1", "bikes.bmp", (300, 200, 356, 240)),
]


@pytest.fixture(scope="module", autouse=True)
def offline_weights(tmp_path_factory: pytest.TempPathFactory):
    """No weight files and no downloads: LPIPS, FID and KID are skipped, the same on every machine."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CIRBENCH_OFFLINE", "1")
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        yield


@pytest.fixture(scope="module")
def tiny_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny"), SMALL_CROPS)


@pytest.fixture()
def tiny(tiny_master: Path, tmp_path: Path) -> Path:
    """A private copy of the built dataset (each test writes its own results store)."""
    return Path(shutil.copytree(tiny_master, tmp_path / "tiny"))


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment whose PYTHONPATH holds the toy package plus a dist-info declaring its entry points."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(TOY / "src" / "cirbench_toy_plugin", site / "cirbench_toy_plugin")
    project = tomllib.loads((TOY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist = site / f"cirbench_toy_plugin-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project["entry-points"]
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()) for group, entries in groups.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("CIRBENCH_TOY_KILL_AFTER", None)
    return env


@pytest.fixture()
def toy_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TOY / "src"))


def _run_dir(dataset: Path, method: str) -> Path:
    runs = sorted((dataset / "results" / "runs").glob(f"{method}-*"))
    assert len(runs) == 1, runs
    return runs[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _pointwise_8bit(lq: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(lq.astype(np.float32) / 255.0)
    return (torch.sqrt(x) * 0.9 + 0.05).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()


def test_entry_point_model_is_evaluated_end_to_end(tiny: Path, plugin_env: dict[str, str]) -> None:
    command = [str(CIRBENCH), "evaluate", str(tiny), "--model", "toy-pointwise", "--batch", "2", "--save-images"]
    result = subprocess.run(command, env=plugin_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    run = _run_dir(tiny, "toy-pointwise")
    scores = pd.read_csv(run / "scores.csv", dtype={"level": str})
    assert list(scores.columns) == SCORE_COLUMNS
    assert set(scores["task"]) == {"JPEG_10", "JPEG_30", "WEBP_5"} and set(scores["image"]) == {"img0", "img1", "img2"}
    assert {"psnr", "ssim"} <= set(scores["metric"]) and set(scores["method"]) == {"toy-pointwise"}
    ds = BuiltDataset.open(tiny)
    hr, lq = read_rgb(ds.hr_path("img2")), read_rgb(ds.lq_path(ds.task("WEBP_5"), "img2"))
    expected = _pointwise_8bit(lq)
    assert np.array_equal(read_rgb(run / "images" / "WEBP_5" / "img2.png"), expected)
    row = scores[(scores["image"] == "img2") & (scores["task"] == "WEBP_5") & (scores["metric"] == "psnr")]
    assert row["value"].item() == pytest.approx(_psnr(hr, expected), abs=1e-9)
    assert row[["codec", "level", "dataset"]].values.tolist() == [["WEBP", "5", "tiny"]]
    record = json.loads((run / "record.json").read_text())
    assert record["mode"] == "blind" and record["status"] == "complete" and record["protocol"] == "full"
    assert record["checkpoint"] is None and record["versions"]["torch"] and record["method"] == "toy-pointwise"
    assert record["timings"]["model_s"] > 0 and record["tasks_complete"] == ["JPEG_10", "JPEG_30", "WEBP_5"]


def _fake_moe_dataset(root: Path) -> Path:
    """The 21-task layout of moe-diffir-21 with noisy copies as LQ (the oracle test needs only the labels)."""
    taskset = load_taskset("moe-diffir-21")
    rng = np.random.default_rng(0)
    images = {f"im{i}": rng.integers(0, 256, (16, 24, 3), dtype=np.uint8) for i in range(2)}
    for folder in ["HR", *(t.folder for t in taskset.tasks)]:
        (root / folder).mkdir(parents=True)
        for stem, rgb in images.items():
            noisy = rgb if folder == "HR" else np.clip(rgb.astype(int) + rng.integers(-9, 10, rgb.shape), 0, 255)
            Image.fromarray(noisy.astype(np.uint8)).save(root / folder / f"{stem}.png")
    build = {"dataset": "fake21", "taskset": {"name": taskset.name, "sha256": taskset.sha256, "path": taskset.path,
             "tasks": [t.as_record() for t in taskset.tasks]}}  # fmt: skip
    (root / "build.json").write_text(json.dumps(build), encoding="utf-8")
    return root


def test_oracle_model_receives_task_ids_0_to_20_in_moe_diffir_order(tmp_path: Path, toy_on_path: None) -> None:
    dataset = _fake_moe_dataset(tmp_path / "fake21")
    log = tmp_path / "oracle.jsonl"
    settings = EvaluationSettings(model="cirbench_toy_plugin:create_oracle", model_options={"log": str(log)}, batch=2)
    outcome = evaluate(dataset, settings)
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["id"] for s in seen] == [i for i in range(21) for _ in range(2)]
    expected_names = [t.name for t in load_taskset("moe-diffir-21").tasks]
    assert [s["name"] for s in seen[::2]] == expected_names
    assert outcome.record["mode"] == "oracle" and outcome.evaluated == 42


def test_crop256_box_matches_a_hand_computation() -> None:
    # 333 -> 320 and 500 -> 480 (multiples of 32); centre 256: top (320-256)/2 = 32, left (480-256)/2 = 112
    assert crop256_box(333, 500) == Box(32, 112, 256, 256)
    assert crop256_box(256, 256) == Box(0, 0, 256, 256)
    assert crop256_box(319, 300) == Box(16, 16, 256, 256)  # 319 -> 288, 300 -> 288
    with pytest.raises(ProtocolError, match="crop256 needs both sides >= 256"):
        crop256_box(255, 600)


def test_crop256_scores_the_same_crop_of_hr_and_lq(tmp_path: Path) -> None:
    dataset = build_tiny(tmp_path, [("kodak", "kodim05.png", (0, 0, 410, 300))], tasks=TASKS[:1])
    outcome = evaluate(dataset, EvaluationSettings(model="identity", protocol="crop256", save_images=True))
    ds = BuiltDataset.open(dataset)
    hr, lq = read_rgb(ds.hr_path("img0")), read_rgb(ds.lq_path(ds.tasks[0], "img0"))
    assert hr.shape == (300, 410, 3)
    # 300 -> 288, 410 -> 384: top (288-256)//2 = 16, left (384-256)//2 = 64
    hr_crop, lq_crop = hr[16:272, 64:320], lq[16:272, 64:320]
    scores = outcome.scores
    psnr = scores[(scores["metric"] == "psnr")]["value"].item()
    assert psnr == pytest.approx(_psnr(hr_crop, lq_crop), abs=1e-9)
    assert np.array_equal(read_rgb(outcome.run_dir / "images" / "JPEG_10" / "img0.png"), lq_crop)
    assert outcome.record["protocol"] == "crop256"


def test_killed_evaluation_resumes_where_it_stopped(tiny: Path, tmp_path: Path, plugin_env: dict[str, str]) -> None:
    fresh = Path(shutil.copytree(tiny, tmp_path / "fresh"))
    log = tmp_path / "calls.jsonl"
    command = [str(CIRBENCH), "evaluate", str(tiny), "--model", "toy-pointwise", "-O", f"log={log}"]
    killed = subprocess.run(command, env={**plugin_env, "CIRBENCH_TOY_KILL_AFTER": "4"}, capture_output=True, timeout=300)
    assert killed.returncode == -9  # SIGKILL on the 5th model call: the 2nd image of task JPEG_30
    run = _run_dir(tiny, "toy-pointwise")
    # scores are flushed at the end of each task and every few seconds: JPEG_10 is stored in full
    stored = pd.concat([pd.read_parquet(p) for p in (run / "parts").glob("*.parquet")])
    assert set(stored.loc[stored["task"] == "JPEG_10", "image"]) == {"img0", "img1", "img2"}
    assert not (run / "scores.parquet").exists()
    assert (run / ".lock").exists()  # left by the killed process: stale, so the next call takes it over
    resumed = subprocess.run(command, env=plugin_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    match = re.search(r"(\d+) pairs restored, (\d+) reused", " ".join(resumed.stdout.split()))
    restored, reused = int(match.group(1)), int(match.group(2))
    assert restored + reused == 9 and reused == len(stored[stored["metric"] == "psnr"]) >= 3
    assert len(log.read_text().splitlines()) == 4 + restored  # only pairs without stored scores ran again
    with pytest.MonkeyPatch.context() as patch:  # an uninterrupted run of the same model, in this process
        patch.syspath_prepend(str(TOY / "src"))
        evaluate(fresh, EvaluationSettings(model="cirbench_toy_plugin:create_pointwise", model_options={"log": str(log)}))
    key = ["task", "image", "metric"]
    after_kill = pd.read_parquet(run / "scores.parquet").sort_values(key).reset_index(drop=True)
    uninterrupted = pd.read_parquet(_run_dir(fresh, "toy-pointwise") / "scores.parquet").sort_values(key)
    pd.testing.assert_frame_equal(after_kill, uninterrupted.reset_index(drop=True))


def test_batching_and_tiling_leave_scores_unchanged(tiny: Path, toy_on_path: None) -> None:
    spec = "cirbench_toy_plugin:create_pointwise"
    one = evaluate(tiny, EvaluationSettings(model=spec, method="b1"))
    tiled = evaluate(tiny, EvaluationSettings(model=spec, method="b3t", batch=3, tile=16, overlap=6))
    columns = ["task", "image", "metric", "value"]
    pd.testing.assert_frame_equal(one.scores[columns], tiled.scores[columns])
    assert tiled.record["tile"] == 16 and tiled.record["overlap"] == 6
    again = evaluate(tiny, EvaluationSettings(model=spec, method="b1"))
    assert again.evaluated == 0 and again.reused == 9


def test_a_model_preferring_tiles_is_tiled_unless_told_otherwise(tiny: Path, tmp_path: Path, toy_on_path: None) -> None:
    spec, log = "cirbench_toy_plugin:create_pointwise", tmp_path / "shapes.jsonl"
    options = {"log": str(log), "tile_size": 16, "multiple": 8}
    tiled = evaluate(tiny, EvaluationSettings(model=spec, model_options=options, tasks=("JPEG_10",), batch=3))
    shapes = {tuple(json.loads(line)["shape"][2:]) for line in log.read_text().splitlines()}
    assert shapes == {(16, 16)} and (tiled.record["tile"], tiled.record["overlap"]) == (16, 4)
    log.unlink()
    whole = evaluate(tiny, EvaluationSettings(model=spec, model_options=options, tasks=("JPEG_10",), tile=0))
    shapes = {tuple(json.loads(line)["shape"][2:]) for line in log.read_text().splitlines()}
    assert shapes == {(48, 64), (40, 56)} and whole.record["tile"] is None  # padded to multiples of 8
    pd.testing.assert_frame_equal(tiled.scores[["image", "metric", "value"]], whole.scores[["image", "metric", "value"]])


def test_a_run_held_by_a_live_process_is_not_entered(tiny: Path) -> None:
    first = evaluate(tiny, EvaluationSettings(model="identity", tasks=("JPEG_10",)))
    (first.run_dir / ".lock").write_text(str(os.getppid()))  # a live process other than this one
    with pytest.raises(ResultsError, match="another process"):
        evaluate(tiny, EvaluationSettings(model="identity"))
    (first.run_dir / ".lock").unlink()
    assert evaluate(tiny, EvaluationSettings(model="identity")).evaluated == 6  # JPEG_30 and WEBP_5 remain


def test_checkpoint_is_hashed_into_the_record_and_unsafe_ones_are_refused(
    tiny: Path, tmp_path: Path, toy_on_path: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from cirbench.models import load_model
    from cirbench.models.checkpoints import save_state_dict

    network = load_model("cirbench_toy_plugin:create_conv", seed=5).network
    save_state_dict(network.state_dict(), tmp_path / "toy.safetensors")
    sha = hashlib.sha256((tmp_path / "toy.safetensors").read_bytes()).hexdigest()
    outcome = evaluate(tiny, EvaluationSettings(model="cirbench_toy_plugin:create_conv", checkpoint=str(tmp_path / "toy.safetensors"), tasks=("JPEG_10",)))
    assert outcome.record["checkpoint"]["sha256"] == sha and outcome.record["method"] == f"toy-conv@{sha[:8]}"
    assert outcome.record["identity"]["checkpoint_sha256"] == sha
    torch.save({"state_dict": network.state_dict(), "trap": _OpensAFile(tmp_path / "pwned")}, tmp_path / "evil.pth")
    before = sorted((tiny / "results" / "runs").iterdir())
    code = main(["evaluate", str(tiny), "--model", "cirbench_toy_plugin:create_conv", "--checkpoint", str(tmp_path / "evil.pth")])
    assert code == 1 and "refused" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and sorted((tiny / "results" / "runs").iterdir()) == before
    assert main(["evaluate", str(tiny), "--model", "identity", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "does not exist" in capsys.readouterr().err


class _OpensAFile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


class _NaNModel:
    info = ModelInfo(name="nan-model", version="1", needs_task_label=False)

    def restore(self, lq, task):
        return lq * float("nan")

    def to(self, device):
        return self


def make_nan_model(checkpoint=None, device="cpu"):
    return _NaNModel()


def test_a_model_returning_nan_stops_the_run(tiny: Path) -> None:
    with pytest.raises(ModelError, match="NaN"):
        evaluate(tiny, EvaluationSettings(model=f"{__name__}:make_nan_model"))


def test_cli_reports_bad_input_in_one_line(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tiny), "--model", "identiy"]) == 1
    assert "did you mean 'identity'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nowhere"), "--model", "identity"]) == 1
    assert "not a built cirbench dataset" in capsys.readouterr().err
    assert main(["evaluate", str(tiny), "--model", "identity", "--protocol", "crop256"]) == 1
    assert "crop256 needs both sides >= 256" in capsys.readouterr().err
