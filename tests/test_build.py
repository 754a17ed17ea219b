"""End-to-end builds with the real encoders: layout, manifest, byte-identical rebuilds, resume, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_taskset
from PIL import Image

from cirbench.build.builder import BuildOptions, build_dataset
from cirbench.build.manifest import COLUMN_NAMES, JOURNAL_NAME, read_manifest_table
from cirbench.cli import main

STABLE = ["kind", "image", "task", "output_file", "output_sha256", "bitstream_sha256", "bitstream_bytes", "fingerprint"]


def _build(source: Path, out: Path, taskset: Path, **extra) -> object:
    return build_dataset(BuildOptions(out=out, source=source, taskset=str(taskset), name="set", **extra))


def _stable(dataset: Path) -> pd.DataFrame:
    frame = read_manifest_table(dataset)[STABLE]
    return frame.sort_values(["kind", "image", "task"]).reset_index(drop=True)


def test_layout_and_manifest_record_every_byte(small_sources: Path, tmp_path: Path, five_codec_taskset: Path) -> None:
    report = _build(small_sources, tmp_path / "out", five_codec_taskset, keep_bitstreams=True)
    assert report.ok and report.sources == 3 and report.built == 15
    root = tmp_path / "out" / "set"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["AVC_37", "HM_42", "HR", "JPEG_10", "VTM_47", "WEBP_5", "bitstreams", "moe_diffir_unbuilt"]
    frame = read_manifest_table(root)
    assert list(frame.columns) == COLUMN_NAMES and len(frame) == 18
    for row in frame[frame["kind"] == "lq"].to_dict(orient="records"):
        decoded = np.asarray(Image.open(root / row["output_file"]))
        source = np.asarray(Image.open(root / "HR" / f"{row['image']}.png"))
        assert decoded.shape == source.shape == (row["height"], row["width"], 3)
        bitstream = (root / row["bitstream_file"]).read_bytes()
        assert len(bitstream) == row["bitstream_bytes"]
        assert row["bpp"] == pytest.approx(8 * len(bitstream) / (row["height"] * row["width"]))
        mse = np.mean((decoded.astype(float) - source) ** 2)
        assert row["psnr"] == pytest.approx(10 * np.log10(255**2 / mse))
        if row["codec"] in ("hevc", "avc", "vvc"):
            assert json.loads(row["encoder_stats_json"])["encoder_qp"] == json.loads(row["params_json"])["qp"]
    barbara = frame[(frame["image"] == "barbara") & (frame["kind"] == "hr")].iloc[0]
    assert "grayscale" in barbara["source_conversion"]
    record = json.loads((root / "build.json").read_text())
    assert record["taskset"]["sha256"] and record["outcome"]["built"] == 15
    assert record["environment"]["packages"]["imageio-ffmpeg"] == "0.8.1"


def test_clean_builds_are_byte_identical_for_all_five_codecs(small_sources: Path, tmp_path: Path, five_codec_taskset: Path) -> None:
    _build(small_sources, tmp_path / "a", five_codec_taskset, jobs=1)
    _build(small_sources, tmp_path / "b", five_codec_taskset, jobs=2)
    first, second = _stable(tmp_path / "a" / "set"), _stable(tmp_path / "b" / "set")
    pd.testing.assert_frame_equal(first, second)
    for relative in first["output_file"]:
        assert (tmp_path / "a" / "set" / relative).read_bytes() == (tmp_path / "b" / "set" / relative).read_bytes()
    assert set(first[first["kind"] == "lq"]["task"]) == {"JPEG_10", "VVC_47", "HEVC_42", "WEBP_5", "AVC_37"}


def test_rerun_skips_what_matches_and_rebuilds_what_does_not(small_sources: Path, tmp_path: Path, five_codec_taskset: Path) -> None:
    _build(small_sources, tmp_path / "out", five_codec_taskset)
    again = _build(small_sources, tmp_path / "out", five_codec_taskset)
    assert again.built == 0 and again.up_to_date == 15
    damaged = tmp_path / "out" / "set" / "HM_42" / "kodim01.png"
    damaged.write_bytes(b"tampered")
    repaired = _build(small_sources, tmp_path / "out", five_codec_taskset)
    assert repaired.built == 1 and repaired.up_to_date == 14
    assert Image.open(damaged).size == (96, 64)
    forced = _build(small_sources, tmp_path / "out", five_codec_taskset, force=True)
    assert forced.built == 15 and forced.up_to_date == 0
    subset = _build(small_sources, tmp_path / "out", five_codec_taskset, force=True, tasks=["JPEG_10"])
    assert subset.built == 3 and len(_stable(tmp_path / "out" / "set")) == 18  # other tasks' rows are kept
    Image.open(small_sources / "bikes.bmp").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(small_sources / "bikes.bmp")
    changed = _build(small_sources, tmp_path / "out", five_codec_taskset)
    assert changed.built == 5 and changed.up_to_date == 10  # a changed source rebuilds its HR and all its tasks
    hr = np.asarray(Image.open(tmp_path / "out" / "set" / "HR" / "bikes.png"))
    assert np.array_equal(hr, np.asarray(Image.open(small_sources / "bikes.bmp").convert("RGB")))


def test_bad_inputs_each_give_one_line_and_the_rest_is_built(small_sources: Path, tmp_path: Path, five_codec_taskset: Path, capsys) -> None:
    from test_sources import make_bad_inputs

    out = tmp_path / "out"
    assert main(["build", str(small_sources), str(out), "--task-set", str(five_codec_taskset), "--name", "set"]) == 0
    before = _stable(out / "set")
    expected = make_bad_inputs(small_sources)
    shutil.copy(small_sources / "kodim01.png", small_sources / "kodim01 ünïcode.png")
    capsys.readouterr()
    code = main(["build", str(small_sources), str(out), "--task-set", str(five_codec_taskset), "--name", "set", "--max-pixels", "50000000"])
    captured = capsys.readouterr()
    text = " ".join(captured.out.split()) + " " + " ".join(captured.err.split())
    assert code == 1
    for name, reason in expected.items():
        assert name in text and reason in text, name
    after = _stable(out / "set")
    assert set(map(tuple, before.values.tolist())) <= set(map(tuple, after.values.tolist()))  # nothing lost
    assert (out / "set" / "VTM_47" / "kodim01 ünïcode.png").exists()


def test_fail_fast_stops_at_the_first_failure(small_sources: Path, tmp_path: Path, five_codec_taskset: Path) -> None:
    (small_sources / "aaa_broken.png").write_bytes(b"garbage")
    report = _build(small_sources, tmp_path / "out", five_codec_taskset, fail_fast=True)
    assert len(report.failures) == 1 and "aaa_broken.png" in report.failures[0]
    assert report.built == 0


def test_unwritable_output_folder_is_reported_per_entry(small_sources: Path, tmp_path: Path, five_codec_taskset: Path) -> None:
    root = tmp_path / "out" / "set"
    root.mkdir(parents=True)
    (root / "HM_42").write_text("a file where a folder must go", encoding="utf-8")
    report = _build(small_sources, tmp_path / "out", five_codec_taskset)
    assert len(report.failures) == 3 and all("HEVC_42" in f and "HM_42" in f for f in report.failures)
    assert report.built == 12
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder", encoding="utf-8")
    assert main(["build", str(small_sources), str(blocked / "sub"), "--task-set", str(five_codec_taskset)]) == 1


def test_dry_run_writes_nothing(small_sources: Path, tmp_path: Path, five_codec_taskset: Path) -> None:
    report = _build(small_sources, tmp_path / "out", five_codec_taskset, dry_run=True)
    assert report.would_build == 15 and not (tmp_path / "out").exists()


def test_learned_tasks_are_reported_unavailable_and_the_rest_builds(small_sources: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    args = ["build", str(small_sources), str(tmp_path / "out"), "--tasks", "JPEG_10,PSNR_1", "--tasks", "HIFI_1"]
    assert main(args) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "unavailable: 2 learned task(s) (PSNR_1, HIFI_1)" in text and "cirbench weights list" in text
    assert len([line for line in text.split("unavailable:") if line.strip()]) == 2  # one summary line
    details = json.loads((tmp_path / "out" / "src" / "build.json").read_text())["outcome"]["unavailable_tasks"]
    assert "cirbench weights import" in details["PSNR_1"] and "cheng2020-anchor-1-dad2ebff.pth.tar" in details["PSNR_1"]
    assert len(list((tmp_path / "out" / "src" / "JPEG_10").glob("*.png"))) == 3


def test_default_source_is_the_embedded_samples_and_info_summarises(tmp_path: Path, capsys) -> None:
    assert main(["build", str(tmp_path / "out"), "--tasks", "JPEG_10", "--tasks", "WEBP_1"]) == 0
    assert len(list((tmp_path / "out" / "samples" / "HR").glob("*.png"))) == 4
    capsys.readouterr()
    assert main(["info", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "JPEG_10" in text and "WEBP_1" in text and "mean bpp" in text


def test_manifest_schema_document_lists_every_column() -> None:
    doc = (Path(__file__).resolve().parents[1] / "manifests" / "schema" / "manifest.md").read_text(encoding="utf-8")
    for column in COLUMN_NAMES:
        assert f"| `{column}` |" in doc, column


def test_journal_rows_survive_until_compaction(small_sources: Path, tmp_path: Path) -> None:
    taskset = write_taskset(tmp_path / "j.toml", [{"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "params": {"quality": 10}}])
    _build(small_sources, tmp_path / "out", taskset)
    assert not (tmp_path / "out" / "set" / JOURNAL_NAME).exists()
