"""Leaderboard: identity row added automatically, means over images then tasks, per-codec means, CLI formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_evaluate import SMALL_CROPS, build_tiny, offline_weights  # noqa: F401  (autouse fixture)

from cirbench.cli import main
from cirbench.compare.leaderboard import build_leaderboard
from cirbench.compare.tables import to_markdown
from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.evaluate import EvaluationSettings, evaluate


@pytest.fixture(scope="module")
def evaluated_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset with tv-chambolle evaluated (identity deliberately not)."""
    dataset = build_tiny(tmp_path_factory.mktemp("lb"), SMALL_CROPS)
    evaluate(dataset, EvaluationSettings(model="tv-chambolle", batch=3))
    return dataset


@pytest.fixture()
def evaluated(evaluated_master: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(evaluated_master, tmp_path / "tiny"))


def test_identity_row_is_added_and_means_match_the_per_image_scores(evaluated: Path) -> None:
    board = build_leaderboard([BuiltDataset.open(evaluated)])
    table = board.table
    assert list(table["method"]) == ["identity", "tv-chambolle"]
    assert (evaluated / "results" / "runs").is_dir() and len(list((evaluated / "results" / "runs").iterdir())) == 2
    scores = board.scores[board.scores["method"] == "tv-chambolle"]
    per_task = scores[scores["metric"] == "psnr"].groupby("task")["value"].mean()
    row = table[table["method"] == "tv-chambolle"].iloc[0]
    for task in ("JPEG_10", "JPEG_30", "WEBP_5"):
        assert row[f"{task}/psnr"] == pytest.approx(per_task[task], abs=1e-12)
    assert row["JPEG mean/psnr"] == pytest.approx((per_task["JPEG_10"] + per_task["JPEG_30"]) / 2, abs=1e-12)
    assert row["WEBP mean/psnr"] == pytest.approx(per_task["WEBP_5"], abs=1e-12)
    assert row["overall/psnr"] == pytest.approx(per_task.mean(), abs=1e-12)
    identity = table[table["method"] == "identity"].iloc[0]
    manifest = BuiltDataset.open(evaluated).manifest
    input_psnr = manifest[manifest["task"] == "JPEG_10"]["psnr"].mean()
    assert identity["JPEG_10/psnr"] == pytest.approx(input_psnr, abs=1e-9)  # identity = the codec output
    assert list(table.columns[:6]) == ["dataset", "protocol", "profile", "mode", "method", "tasks"]
    assert row["mode"] == "blind" and row["tasks"] == "3/3" and row["JPEG_10/psnr/n"] == 3


def test_one_row_per_method_and_test_set(evaluated: Path, tmp_path: Path) -> None:
    second = Path(shutil.copytree(evaluated, tmp_path / "second"))
    build = json.loads((second / "build.json").read_text())
    (second / "build.json").write_text(json.dumps({**build, "dataset": "second"}))
    shutil.rmtree(second / "results")
    evaluate(second, EvaluationSettings(model="identity"))
    board = build_leaderboard([BuiltDataset.open(evaluated), BuiltDataset.open(second)])
    assert sorted(zip(board.table["dataset"], board.table["method"], strict=True)) == [
        ("second", "identity"),
        ("tiny", "identity"),
        ("tiny", "tv-chambolle"),
    ]


def test_cli_prints_md_csv_json_and_writes_files(evaluated: Path, tmp_path: Path, capsys) -> None:
    csv_file, long_file = tmp_path / "leaderboard.csv", tmp_path / "long.csv"
    args = ["leaderboard", str(evaluated), "--csv", str(csv_file), "--long", str(long_file), "--format", "md"]
    assert main(args) == 0
    markdown = capsys.readouterr().out
    assert markdown.splitlines()[0] == "### tiny · protocol full · profile cirbench"
    assert markdown.splitlines()[2].startswith("| mode | method | tasks | N | JPEG_10/psnr")
    assert "| blind | identity | 3/3 | 3 |" in markdown and "| blind | tv-chambolle | 3/3 | 3 |" in markdown
    assert "| | input bpp | | |" in markdown
    wide = pd.read_csv(csv_file)
    assert list(wide["method"]) == ["identity", "tv-chambolle"] and "overall/ssim" in wide.columns
    long = pd.read_csv(long_file)
    assert list(long.columns[:8]) == ["dataset", "image", "task", "codec", "level", "method", "metric", "value"]
    assert len(long[(long["metric"] == "psnr")]) == 2 * 3 * 3  # methods x tasks x images
    assert main(["leaderboard", str(evaluated), "--format", "json", "--summary"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "psnr" in document["metrics"] and all("JPEG_10/psnr" not in row for row in document["rows"])
    assert {"JPEG mean/psnr", "overall/psnr"} <= set(document["rows"][0])
    assert main(["leaderboard", str(evaluated), "--format", "xml"]) == 2


def test_codec_and_overall_means_need_every_task(evaluated: Path) -> None:
    evaluate(evaluated, EvaluationSettings(model="identity", method="partial", tasks=("JPEG_10", "WEBP_5")))
    table = build_leaderboard([BuiltDataset.open(evaluated)]).table.set_index("method")
    assert table.loc["partial", "JPEG_10/psnr"] == pytest.approx(table.loc["identity", "JPEG_10/psnr"])
    assert table.loc["partial", "WEBP mean/psnr"] == pytest.approx(table.loc["identity", "WEBP mean/psnr"])
    assert pd.isna(table.loc["partial", "JPEG mean/psnr"]) and pd.isna(table.loc["partial", "overall/psnr"])
    assert pd.isna(table.loc["partial", "JPEG_30/psnr"]) and not pd.isna(table.loc["identity", "overall/psnr"])


def test_markdown_shows_infinite_psnr_as_inf(evaluated: Path) -> None:
    board = build_leaderboard([BuiltDataset.open(evaluated)])
    board.table.loc[0, ["JPEG_10/psnr", "JPEG_10/psnr/low", "JPEG_10/psnr/high"]] = [float("inf"), float("nan"), float("nan")]
    assert "| inf |" in to_markdown(board)
