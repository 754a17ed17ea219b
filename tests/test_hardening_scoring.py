"""Hardening of measurement (pyiqa's conventions: test_perceptual_metrics.py), 48-bit and RGBA inputs, infinite PSNR, small images,
the evaluation lock and the MoE-DiffIR data section (issue 17, items 12-17).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from conftest import write_taskset
from PIL import Image

from cirbench.build.builder import BuildOptions, build_dataset
from cirbench.cli import main
from cirbench.evaluation.results import LOCK_FILE, ResultsError, RunFolder
from cirbench.tasks import load_taskset


@pytest.fixture()
def pair_dirs(tmp_path: Path, kodim01: np.ndarray) -> tuple[Path, Path]:
    ref, test = tmp_path / "ref", tmp_path / "test"
    ref.mkdir()
    test.mkdir()
    Image.fromarray(kodim01[:64, :64]).save(ref / "a.png")
    noisy = np.clip(kodim01[:64, :64].astype(int) + 3, 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(test / "a.png")
    return ref, test


def test_score_refuses_48_bit_and_transparent_images_and_notes_opaque_alpha(pair_dirs, tmp_path: Path, capsys) -> None:
    ref, test = pair_dirs
    deep = np.full((64, 64, 3), 40000, np.uint16)
    tifffile.imwrite(ref / "b.tif", deep, photometric="rgb")
    tifffile.imwrite(test / "b.tif", deep + 1, photometric="rgb")
    assert main(["score", str(ref), str(test), "--metrics", "psnr"]) == 1
    assert "16 bits per sample" in capsys.readouterr().err
    for folder in (ref, test):
        (folder / "b.tif").unlink()
    rgba = np.dstack([np.zeros((64, 64, 3), np.uint8), np.full((64, 64), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(ref / "c.png")
    Image.fromarray(rgba, "RGBA").save(test / "c.png")
    out = tmp_path / "scores.csv"
    assert main(["score", str(ref), str(test), "--metrics", "psnr", "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert any("opaque alpha dropped from 2" in w for w in summary["warnings"])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(test / "c.png")
    assert main(["score", str(ref), str(test), "--metrics", "psnr"]) == 1
    assert "transparent pixels" in capsys.readouterr().err


def test_an_identical_pair_keeps_inf_per_image_and_a_capped_mean(pair_dirs, tmp_path: Path) -> None:
    ref, test = pair_dirs
    Image.open(ref / "a.png").save(ref / "same.png")
    Image.open(ref / "a.png").save(test / "same.png")
    out = tmp_path / "scores.csv"
    assert main(["score", str(ref), str(test), "--metrics", "psnr", "--out", str(out)]) == 0
    rows = dict(line.split(",") for line in out.read_text().splitlines()[1:])
    assert rows["same"] == "inf"
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["summary"]["psnr"] == pytest.approx((float(rows["a"]) + 100.0) / 2)
    assert summary["summary"]["psnr_n_inf"] == 1 and "100 dB" in summary["mean_convention"]


def test_a_small_image_skips_ms_ssim_for_that_image_only(pair_dirs, tmp_path: Path, kodim01: np.ndarray) -> None:
    ref, test = pair_dirs
    Image.fromarray(kodim01[:192, :192]).save(ref / "big.png")
    Image.fromarray(np.clip(kodim01[:192, :192].astype(int) - 2, 0, 255).astype(np.uint8)).save(test / "big.png")
    out = tmp_path / "scores.csv"
    assert main(["score", str(ref), str(test), "--metrics", "psnr,ssim,ms_ssim", "--out", str(out)]) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["summary"]["psnr_n"] == 2 and summary["summary"]["ms_ssim_n"] == 1
    assert 0 < summary["summary"]["ms_ssim"] <= 1
    assert [w for w in summary["warnings"] if w.startswith("ms_ssim skipped for 1 image(s)")]


def test_the_evaluation_lock_is_never_seen_empty(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    (folder.path / LOCK_FILE).write_text("")  # what a racing process saw between create and write
    with pytest.raises(ResultsError, match="another process"):
        with folder.lock():
            pass
    (folder.path / LOCK_FILE).unlink()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (folder.path / LOCK_FILE).write_text(str(child.pid))
        with pytest.raises(ResultsError, match="another process"):
            with folder.lock():
                pass
    finally:
        child.kill()
        child.wait()
    with folder.lock():  # the holder is gone: the stale lock is taken over, holding our PID from the start
        assert (folder.path / LOCK_FILE).read_text() == str(os.getpid())
    assert not (folder.path / LOCK_FILE).exists()


def test_a_moe_diffir_data_section_points_at_the_real_folders(small_sources: Path, tmp_path: Path) -> None:
    tasks = write_taskset(tmp_path / "t.toml", [
        {"name": "WEBP_5", "codec": "webp", "family": "WEBP", "level": 5, "id": 10, "params": {"quality": 5}},
        {"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "id": 0, "params": {"quality": 10}},
        {"name": "JPEG_33", "codec": "jpeg", "family": "JPEG", "level": 33, "params": {"quality": 33}},
    ])  # fmt: skip
    assert build_dataset(BuildOptions(out=tmp_path / "out", source=small_sources, taskset=str(tasks), name="set")).ok
    section = yaml.safe_load((tmp_path / "out" / "set" / "moe_diffir_data.yaml").read_text())
    params = section["data"]["params"]["train"]["params"]
    assert Path(params["WEBP_5"]).name == "WEBP_5" and Path(params["WEBP_5"]).is_dir()
    assert sorted(os.listdir(params["JPEG_10"])) == ["barbara.png", "bikes.png", "kodim01.png"]
    assert "JPEG_33" not in params
    # Their config's 21 path keys hold 'Your_Path/...' placeholders; their loader lists every one of them
    # (os.listdir(key) + file name, whatever de_type says). After the merge none may be a placeholder.
    official = [t.name for t in sorted(load_taskset("moe-diffir-21").tasks, key=lambda t: t.id)]
    theirs = {"queue_size": 120, "key": "train", "de_type": official, **{n: f"Your_Path/{n}/" for n in official}}
    merged = {**theirs, **params}
    assert merged["de_type"] == official
    for name in official:
        assert merged[name].endswith("/") and "Your_Path" not in merged[name]
        listed = os.listdir(merged[name])  # what their loader does first
        assert listed == ([] if name not in ("JPEG_10", "WEBP_5") else sorted(listed))


def test_evaluate_scores_the_rest_when_ms_ssim_cannot_score_small_images(tmp_path: Path, capsys) -> None:
    from test_evaluate import SMALL_CROPS, build_tiny

    dataset = build_tiny(tmp_path, SMALL_CROPS[:2])
    assert main(["evaluate", str(dataset), "--model", "identity", "--profile", "compressai"]) == 0
    captured = capsys.readouterr()
    assert "ms_ssim' skipped for some images" in captured.err and "Traceback" not in captured.err
    record = json.loads(next((dataset / "results").rglob("record.json")).read_text())
    assert "6 image(s) not scored" in json.dumps(record)
    assert "psnr" in captured.out
