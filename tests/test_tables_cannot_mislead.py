"""Tables that cannot mislead: Δ carries the interval of the difference, best means significantly better (the test
`compare` uses), one protocol and one profile per table, non-results are not ranked, the terminal fits 120 columns.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_evaluate import SMALL_CROPS, build_tiny, offline_weights  # noqa: F401  (autouse fixture)
from test_results_store import Scripted

from cirbench.cli import main
from cirbench.compare.cells import value_columns
from cirbench.compare.leaderboard import build_leaderboard
from cirbench.compare.report import write_report
from cirbench.compare.statistics import BootstrapSettings, cell_statistics, compare_methods
from cirbench.compare.tables import to_csv, to_markdown
from cirbench.compare.terminal import WIDTH, to_terminal
from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.evaluate import EvaluationSettings, evaluate
from cirbench.evaluation.rescore import rescore


def _scores(values: dict[str, list[float]], task: str = "T") -> pd.DataFrame:
    rows = [{"dataset": "d", "protocol": "full", "profile": "cirbench", "mode": "blind", "method": method,
             "image": f"i{i:02d}", "task": task, "codec": "C", "level": "1", "metric": "psnr", "value": v}
            for method, per_image in values.items() for i, v in enumerate(per_image)]  # fmt: skip
    return pd.DataFrame(rows)


def test_a_certain_gain_with_overlapping_absolute_intervals_is_best_in_the_table_and_in_compare() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(28, 3, size=29)  # images differ a lot: absolute intervals are wide
    gain = base + 0.5 + rng.normal(0, 0.05, size=29)  # the same +0.5 dB on every image: a certain gain
    near = base + rng.normal(0, 0.05, size=29)  # noise around the input: no gain
    scores = _scores({"identity": list(base), "gain": list(gain), "near": list(near)})
    settings = BootstrapSettings()
    stats = cell_statistics(scores, settings)
    columns = value_columns(stats, ["C"], ["psnr"])
    rows = {key[4]: entry for key, entry in columns.rows.items()}
    assert rows["gain"]["T/psnr/low"] < rows["identity"]["T/psnr/high"]  # the absolute intervals overlap ...
    assert rows["gain"]["T/psnr/delta_low"] > 0.45 and rows["gain"]["T/psnr/delta_high"] < 0.55  # ... Δ's does not
    paired = compare_methods(scores, "gain", "identity", settings).iloc[0]
    assert paired["low"] == pytest.approx(rows["gain"]["T/psnr/delta_low"])  # one interval, one resampling
    assert paired["high"] == pytest.approx(rows["gain"]["T/psnr/delta_high"]) and paired["significant"]
    near_vs = compare_methods(scores, "near", "identity", settings).iloc[0]
    assert not near_vs["significant"]
    assert near_vs["low"] == pytest.approx(rows["near"]["T/psnr/delta_low"])


def _board_of(scores: pd.DataFrame):
    from cirbench.compare.cells import directions, with_marks

    stats = cell_statistics(scores, BootstrapSettings())
    columns = value_columns(stats, ["C"], ["psnr"])
    table = pd.DataFrame([{**dict(zip(["dataset", "protocol", "profile", "mode", "method"], k, strict=True)), **v}
                          for k, v in columns.rows.items()])  # fmt: skip
    return with_marks(table, columns.resampled, stats.settings, directions(["psnr"])).set_index("method")


def test_best_needs_significance_against_every_other_method_else_the_leaders_are_tied() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(28, 3, size=29)
    clear = {"identity": list(base), "a": list(base + 0.5 + rng.normal(0, 0.05, 29)),
             "b": list(base + 0.2 + rng.normal(0, 0.05, 29))}  # fmt: skip
    marks = _board_of(_scores(clear))["T/psnr/best"]
    assert marks["a"] == "best" and marks["b"] == "" and marks["identity"] == ""
    close = {**clear, "b": list(np.asarray(clear["a"]) + rng.normal(0, 0.05, 29))}  # a and b: no certain difference
    marks = _board_of(_scores(close))["T/psnr/best"]
    assert marks["a"] == marks["b"] == "tied" and marks["identity"] == ""
    assert not compare_methods(_scores(close), "a", "b").iloc[0]["significant"]  # compare agrees


@pytest.fixture(scope="module")
def crowded_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset holding two profiles, two protocols, a rescored run, a partial run and a non-result."""
    dataset = build_tiny(tmp_path_factory.mktemp("crowded"), SMALL_CROPS)
    saved = evaluate(dataset, EvaluationSettings(model="tv-chambolle", save_images=True)).run_dir
    rescore(saved, "pyiqa")
    evaluate(dataset, EvaluationSettings(model="identity", profile="pyiqa"))
    evaluate(dataset, EvaluationSettings(model="tv-chambolle", protocol="resize256"))
    evaluate(dataset, EvaluationSettings(model="tv-chambolle", model_options={"weight": 0.05}, tasks=("JPEG_10",)))
    random = Scripted("random-net", lambda lq, _c, _t: lq.clamp(0.1, 0.9), not_a_result="seeded random weights")
    evaluate(dataset, EvaluationSettings(model=random))
    return dataset


@pytest.fixture()
def crowded(crowded_master: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(crowded_master, tmp_path / "tiny"))


def test_one_table_per_protocol_and_profile_and_non_results_are_not_ranked(crowded: Path) -> None:
    ds = BuiltDataset.open(crowded)
    board = build_leaderboard([ds])  # default profile: cirbench
    assert {key[1:] for key, _ in board.groups()} == {("full", "cirbench"), ("resize256", "cirbench")}
    assert "random-net" not in set(board.table["method"])
    assert any("not ranked, not results: tiny/random-net (seeded random weights)" in n for n in board.notes)
    assert "tv-chambolle[weight=0.05]" in set(board.table["method"])  # a lone run with options names them
    pyiqa = build_leaderboard([ds], profile="pyiqa")
    assert set(pyiqa.table["profile"]) == {"pyiqa"} and set(pyiqa.table["method"]) == {"identity", "tv-chambolle"}
    every = build_leaderboard([ds], include_non_results=True)
    assert "random-net [not a result: seeded random weights]" in set(every.table["method"])
    markdown = to_markdown(board)
    assert markdown.count("### tiny · protocol") == 2 and "profile pyiqa" not in markdown
    wide = pd.read_csv(pd.io.common.StringIO(to_csv(board)))
    for suffix in ("", "/low", "/high", "/delta", "/delta_low", "/delta_high", "/best", "/n"):
        assert f"JPEG_10/psnr{suffix}" in wide.columns
    row = wide[(wide["method"] == "tv-chambolle") & (wide["protocol"] == "full")].iloc[0]
    assert row["JPEG_10/psnr/delta_low"] <= row["JPEG_10/psnr/delta"] <= row["JPEG_10/psnr/delta_high"]
    assert row["overall/psnr/delta_low"] <= row["overall/psnr/delta"] <= row["overall/psnr/delta_high"]


def test_the_report_renders_a_crowded_dataset(crowded: Path, tmp_path: Path) -> None:
    for profile in ("cirbench", "pyiqa"):
        outcome = write_report(crowded, tmp_path / profile, profile=profile)
        page = outcome.index.read_text()
        assert f"profile {profile}" in page and ("random-net" in page) == (profile == "cirbench")  # in the notes
        assert "<td class='method'>random-net" not in page and outcome.plots
    assert (tmp_path / "cirbench" / "plots" / "tiny" / "resize256-cirbench").is_dir()


def test_the_terminal_table_is_ranked_and_fits_120_columns(crowded: Path, capsys) -> None:
    board = build_leaderboard([BuiltDataset.open(crowded)], protocol="full")
    text = to_terminal(board)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    ranked = [line.split()[1] for line in text.splitlines() if line[:1].isdigit()]
    assert ranked[0] == "tv-chambolle" and "identity" in ranked
    assert main(["leaderboard", str(crowded), "--protocol", "full", "--sort", "ssim"]) == 0
    out = capsys.readouterr().out
    assert "sorted by overall ssim" in out and max(len(line) for line in out.splitlines()) <= WIDTH


def test_the_report_says_what_is_missing_offers_downloads_and_picks_crops_by_gain(crowded: Path, tmp_path: Path) -> None:
    from cirbench.compare.figures import crop_candidates
    from cirbench.evaluation.results import ResultsStore

    out = tmp_path / "report"
    write_report(crowded, out)
    page = (out / "index.html").read_text()
    assert "cirbench 0.1.0" in page and "manifest sha256" in page
    assert "missing: KID, LPIPS, PATCH_FID: weights not installed" in page  # offline here: named, not hidden
    table = pd.read_csv(out / "tables" / "tiny" / "full-cirbench" / "leaderboard.csv")
    assert "JPEG_10/psnr/delta_low" in table.columns and "identity" in set(table["method"])
    assert (out / "tables" / "tiny" / "full-cirbench" / "leaderboard.json").is_file()
    assert len(pd.read_csv(out / "tables" / "tiny" / "full-cirbench" / "per_image.csv")) > 0
    assert "class='sortable'" in page and "runs/tiny/" in page and list((out / "runs" / "tiny").glob("*.json"))
    board = build_leaderboard([BuiltDataset.open(crowded)], protocol="full")
    (key, rows), *_ = board.groups()
    runs = {label: f for f, r, label in ResultsStore(crowded / "results").labelled_runs() if r["protocol"] == "full"
            and r["profile"] == "cirbench"}  # fmt: skip
    picked = crop_candidates(BuiltDataset.open(crowded), board, rows, "full", "cirbench", runs)
    gains = [gain for _, _, gain in picked]
    assert gains[0] == max(gains) and gains[1] == min(gains)  # the largest gain, then the largest loss

