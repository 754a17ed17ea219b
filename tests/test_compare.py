"""The comparison researchers can trust: no run hides another, modes, N and Δ, paired intervals, BD-rate.

Bootstrap and BD-rate are checked on hand-computable cases; the leaderboard on the tiny built dataset.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_evaluate import SMALL_CROPS, TOY, build_tiny, offline_weights  # noqa: F401  (fixture)

from cirbench.cli import main
from cirbench.compare.bdrate import bd_rate
from cirbench.compare.leaderboard import build_leaderboard
from cirbench.compare.statistics import BootstrapSettings, cell_statistics, compare_methods
from cirbench.compare.tables import to_markdown
from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.evaluate import EvaluationSettings, evaluate


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dataset = build_tiny(tmp_path_factory.mktemp("compare"), SMALL_CROPS)
    evaluate(dataset, EvaluationSettings(model="identity"))
    evaluate(dataset, EvaluationSettings(model="tv-chambolle"))
    return dataset


@pytest.fixture()
def dataset(master: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(master, tmp_path / "tiny"))


def test_a_second_run_with_other_options_never_replaces_the_first(dataset: Path) -> None:
    evaluate(dataset, EvaluationSettings(model="tv-chambolle", model_options={"weight": 0.05}, tasks=("WEBP_5",)))
    table = build_leaderboard([BuiltDataset.open(dataset)]).table.set_index("method")
    assert {"tv-chambolle", "tv-chambolle[weight=0.05]"} <= set(table.index)
    full = table.loc["tv-chambolle"]
    assert full["tasks"] == "3/3" and not pd.isna(full["overall/psnr"]) and not pd.isna(full["JPEG_10/psnr"])
    partial = table.loc["tv-chambolle[weight=0.05]"]
    assert partial["tasks"] == "1/3" and pd.isna(partial["overall/psnr"]) and not pd.isna(partial["WEBP_5/psnr"])


def test_rows_carry_mode_n_and_delta_and_mode_filters(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TOY / "src"))
    log = str(dataset.parent / "oracle.jsonl")
    evaluate(dataset, EvaluationSettings(model="cirbench_toy_plugin:create_oracle", model_options={"log": log}))
    board = build_leaderboard([BuiltDataset.open(dataset)])
    table = board.table.set_index("method")
    toy = next(m for m in table.index if m.startswith("toy-oracle["))  # a lone run names the options it was given
    assert table.loc["identity", "mode"] == "blind" and table.loc[toy, "mode"] == "oracle"
    tv = table.loc["tv-chambolle"]
    assert tv["JPEG_10/psnr/n"] == 3
    assert tv["JPEG_10/psnr/delta"] == pytest.approx(tv["JPEG_10/psnr"] - table.loc["identity", "JPEG_10/psnr"])
    assert 0 < board.input_bpp["tiny"]["JPEG_10"] < board.input_bpp["tiny"]["JPEG_30"]
    blind = build_leaderboard([BuiltDataset.open(dataset)], mode="blind").table
    assert toy not in set(blind["method"]) and "identity" in set(blind["method"])
    oracle = build_leaderboard([BuiltDataset.open(dataset)], mode="oracle").table
    assert set(oracle["method"]) == {"identity", toy}


def test_intervals_contain_the_mean_and_are_paired_and_seeded(dataset: Path) -> None:
    board = build_leaderboard([BuiltDataset.open(dataset)], bootstrap=BootstrapSettings(resamples=200, seed=3))
    row = board.table.set_index("method").loc["tv-chambolle"]
    for column in ("JPEG_10/psnr", "JPEG mean/psnr", "overall/ssim"):
        assert row[f"{column}/low"] <= row[column] <= row[f"{column}/high"]
    again = build_leaderboard([BuiltDataset.open(dataset)], bootstrap=BootstrapSettings(resamples=200, seed=3))
    pd.testing.assert_frame_equal(board.table, again.table)
    three, four = (cell_statistics(board.scores, BootstrapSettings(200, seed)).resampled for seed in (3, 4))
    assert not np.array_equal(three, four)  # the seed decides the resamples
    same = compare_methods(board.scores, "tv-chambolle", "tv-chambolle")
    assert (same["difference"] == 0).all() and (same["p_value"] == 1).all() and not same["significant"].any()


def _scores(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for method, per_image in values.items():
        for index, value in enumerate(per_image):
            rows.append({"dataset": "d", "protocol": "full", "profile": "p", "mode": "blind", "method": method,
                         "image": f"i{index}", "task": "T", "codec": "C", "level": "1", "metric": "psnr",
                         "value": value})  # fmt: skip
    return pd.DataFrame(rows)


def test_paired_bootstrap_and_wilcoxon_on_a_constant_gain() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(30, 2, size=8)
    scores = _scores({"a": list(base + 1.0), "b": list(base)})
    result = compare_methods(scores, "a", "b").iloc[0]
    assert result["difference"] == pytest.approx(1.0) and result["low"] == pytest.approx(1.0)
    assert result["high"] == pytest.approx(1.0) and result["p_value"] == pytest.approx(2 / 2**8)  # exact test
    assert result["significant"]
    stats = cell_statistics(scores, BootstrapSettings(resamples=500))
    cells = stats.cells.set_index("method")
    width_a = cells.loc["a", "high"] - cells.loc["a", "low"]
    assert width_a == pytest.approx(cells.loc["b", "high"] - cells.loc["b", "low"])  # same resamples
    noisy = compare_methods(_scores({"a": [1.0, -1.0] * 4, "b": [0.0] * 8}), "a", "b").iloc[0]
    assert noisy["low"] < 0 < noisy["high"] and not noisy["significant"]


def test_bd_rate_on_hand_checked_curves() -> None:
    rates, psnr = [0.1, 0.2, 0.4], [30.0, 32.0, 34.0]
    assert bd_rate(rates, psnr, [0.8 * r for r in rates], psnr).percent == pytest.approx(-20.0)
    shifted = bd_rate(rates, psnr, rates, [p + 1.0 for p in psnr])  # +1 dB at every rate; 2x rate per 2 dB
    assert shifted.percent == pytest.approx((10 ** (-math.log10(2) / 2) - 1) * 100)  # -29.29 %
    assert shifted.overlap_db == (31.0, 34.0) and shifted.note == "3 levels: indicative"
    assert math.isnan(bd_rate(rates, psnr, rates, [p + 10 for p in psnr]).percent)  # no overlap


def test_leaderboard_cli_mode_and_compare_command(dataset: Path, capsys) -> None:
    assert main(["leaderboard", str(dataset), "--mode", "blind", "--summary", "--resamples", "50", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "| blind | tv-chambolle |" in out and "BD-rate" in out and "paired bootstrap" in out
    assert main(["compare", "tv-chambolle", "identity", str(dataset), "--metric", "psnr"]) == 0
    out = capsys.readouterr().out
    assert "| tiny | JPEG_10 | psnr | 3 |" in out and "are significant: their 95 % paired bootstrap" in " ".join(out.split())
    assert main(["compare", "nobody", "identity", str(dataset)]) == 1
    assert "no run labelled 'nobody'" in capsys.readouterr().err
    assert main(["leaderboard", str(dataset), "--mode", "both"]) == 2


def test_a_build_root_with_one_dataset_is_used_and_several_are_named(dataset: Path, tmp_path: Path, capsys) -> None:
    root = dataset.parent
    assert BuiltDataset.open(root).name == "tiny"
    shutil.copytree(dataset, root / "other")
    with pytest.raises(Exception, match="did you mean one of"):
        BuiltDataset.open(root)
    board = build_leaderboard([BuiltDataset.open(dataset)])
    assert "| blind | identity |" in to_markdown(board)


def test_rescore_equals_a_direct_evaluation_and_needs_saved_images(dataset: Path, capsys) -> None:
    import json as _json

    saved = evaluate(dataset, EvaluationSettings(model="tv-chambolle", model_options={"weight": 0.03}, save_images=True))
    assert main(["rescore", str(saved.run_dir), "--profile", "basicsr-y"]) == 0
    direct = evaluate(dataset, EvaluationSettings(model="tv-chambolle", model_options={"weight": 0.03}, profile="basicsr-y"))
    runs = [p for p in (dataset / "results" / "runs").iterdir() if "basicsr-y" in p.name]
    rescored = next(p for p in runs if _json.loads((p / "record.json").read_text())["identity"].get("rescored_from"))
    a = pd.read_parquet(rescored / "scores.parquet").sort_values(["task", "image", "metric"])["value"].to_numpy()
    b = direct.scores.sort_values(["task", "image", "metric"])["value"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    capsys.readouterr()
    plain = next(p for p in (dataset / "results" / "runs").iterdir() if p.name.startswith("tv-chambolle-full-cirbench")
                 and not (p / "images").is_dir())  # fmt: skip
    assert main(["rescore", str(plain), "--profile", "basicsr-y"]) == 1
    assert "repeat the evaluation with --save-images" in capsys.readouterr().err
    identity = next(p for p in (dataset / "results" / "runs").iterdir() if p.name.startswith("identity-full-cirbench"))
    assert main(["rescore", str(identity), "--profile", "basicsr-y"]) == 0  # its outputs are the dataset's own files
    assert "rescored 9 pairs from saved images (model not run)" in " ".join(capsys.readouterr().out.split())


def test_evaluate_metrics_option_and_a_model_object(dataset: Path) -> None:
    from cirbench.models import load_model

    outcome = evaluate(dataset, EvaluationSettings(model=load_model("identity"), metrics=("psnr",), method="obj"))
    assert set(outcome.scores["metric"]) == {"psnr"} and outcome.record["model"]["spec"].startswith("object ")
    assert outcome.record["identity"]["metrics"] == ["psnr"]
    with pytest.raises(Exception, match="not a RestorationModel"):
        evaluate(dataset, EvaluationSettings(model=object()))
