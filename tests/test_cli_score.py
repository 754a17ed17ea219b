"""`cirbench score` tests: stem pairing, per-image CSV and summary JSON, profiles, clear pairing errors, offline.

Folders hold small Kodak crops and their JPEG-decoded versions saved as PNG.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from cirbench.cli import main
from cirbench.metrics import create_metric
from cirbench.metrics.folder_scoring import PairingError, load_image, pair_images, score_pairs
from cirbench.metrics.profiles import PROFILES, get_profile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STEMS = ("kodim01", "kodim02", "kodim03")


@pytest.fixture
def folders(tmp_path):
    ref_dir, test_dir = tmp_path / "HR", tmp_path / "JPEG_10"
    ref_dir.mkdir()
    test_dir.mkdir()
    for stem in STEMS:
        crop = Image.open(DATA / "kodak" / f"{stem}.png").convert("RGB").crop((64, 32, 64 + 96, 32 + 80))
        crop.save(ref_dir / f"{stem}.png")
        buffer = io.BytesIO()
        crop.save(buffer, format="JPEG", quality=10)
        Image.open(io.BytesIO(buffer.getvalue())).save(test_dir / f"{stem}.png")
    return ref_dir, test_dir


def test_score_writes_per_image_csv_and_summary(folders, tmp_path, capsys):
    ref_dir, test_dir = folders
    out = tmp_path / "scores.csv"
    assert main(["score", str(ref_dir), str(test_dir), "--profile", "basicsr-y", "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == list(STEMS)
    psnr_y = create_metric("psnr", channel="y")
    for row in rows:
        expected = psnr_y(load_image(ref_dir / f"{row['image']}.png"), load_image(test_dir / f"{row['image']}.png"))
        assert float(row["psnr_y"]) == pytest.approx(expected.item(), abs=1e-9)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["profile"] == "basicsr-y" and summary["summary"]["n_pairs"] == 3
    assert summary["summary"]["ssim_y"] == pytest.approx(sum(float(r["ssim_y"]) for r in rows) / 3, abs=1e-12)
    assert summary["metrics"]["psnr_y"]["options"]["channel"] == "y"
    assert "psnr_y" in capsys.readouterr().out


def test_metrics_option_selects_columns(folders):
    report = score_pairs(*folders, metrics=["psnr", "ssim"])
    assert set(report.rows[0]) == {"image", "psnr", "ssim"} and report.profile == "cirbench"
    assert all(20 < row["psnr"] < 40 and 0 < row["ssim"] < 1 for row in report.rows)


def test_missing_pairs_are_listed(folders, capsys):
    ref_dir, test_dir = folders
    (test_dir / "kodim02.png").unlink()
    (test_dir / "extra.png").write_bytes((ref_dir / "kodim01.png").read_bytes())
    assert main(["score", str(ref_dir), str(test_dir), "--metrics", "psnr"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "kodim02" in err and "extra" in err and "without a test image" in err


def test_size_mismatch_is_listed(folders):
    ref_dir, test_dir = folders
    Image.open(test_dir / "kodim03.png").crop((0, 0, 90, 80)).save(test_dir / "kodim03.png")
    with pytest.raises(PairingError, match=r"kodim03 \(96x80 vs 90x80\)"):
        pair_images(ref_dir, test_dir)


def test_default_profile_offline_skips_weighted_metrics_but_explicit_request_fails(
    folders, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    report = score_pairs(*folders)
    assert set(report.skipped) == {"lpips", "patch_fid", "kid"}
    assert math.isfinite(report.summary["psnr"])
    assert main(["score", str(folders[0]), str(folders[1]), "--metrics", "lpips"]) == 1
    assert "cirbench weights import" in " ".join(capsys.readouterr().err.split())


def test_profiles_name_registered_metrics():
    from cirbench.metrics import METRICS, metric_info

    assert {"cirbench", "basicsr-y", "pyiqa", "moe-diffir", "sspir"} <= set(PROFILES)
    for profile in PROFILES.values():
        assert profile.description
        for spec in profile.metrics:  # a registered metric, or one of pyiqa's by name (known to its metadata)
            assert spec.metric in METRICS or metric_info(spec.metric).name == spec.metric
    assert [s.result_name for s in get_profile("cirbench").metrics] == ["psnr", "ssim", "lpips", "patch_fid", "kid"]
    assert get_profile("pyiqa").spec("ssim").options["channel"] == "y_full_f32"
    assert get_profile("seesr") is get_profile("sspir")


def test_distribution_metric_results_are_flattened_like_the_evaluator():
    from cirbench.metrics.profiles import flatten_set_result

    kid = flatten_set_result("kid", "kid", {"kid_mean": 0.5, "kid_std": 0.1, "n_ref": 8})
    assert kid == {"kid": 0.5, "kid_std": 0.1, "kid_n_ref": 8}
    fid = flatten_set_result("patch_fid", "patch_fid", {"fid": 12.0, "n_test": 192})
    assert fid == {"patch_fid": 12.0, "patch_fid_n_test": 192}
