"""`cirbench report`: plots, side-by-side crops and a static index.html, rendered in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_evaluate import SMALL_CROPS, build_tiny, offline_weights  # noqa: F401  (autouse fixture)

from cirbench.cli import main
from cirbench.compare.plots import LABEL_HEIGHT, PANEL_GAP, TITLE_HEIGHT, panel_scale
from cirbench.compare.report import ReportError, write_report
from cirbench.dataset.reader import BuiltDataset, read_rgb
from cirbench.evaluation.evaluate import EvaluationSettings, evaluate

HEADER_RGB = (0xE8, 0xEE, 0xF7)  # th background in the report's CSS
BEST_RGB = (0xDF, 0xF0, 0xD8)  # background of the best value per column


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    dataset = build_tiny(root, SMALL_CROPS)
    evaluate(dataset, EvaluationSettings(model="tv-chambolle", batch=3))
    out = root / "report"
    assert main(["report", str(dataset), "--out", str(out)]) == 0
    return dataset, out


def test_report_writes_plots_crops_and_a_page_linking_them(reported: tuple[Path, Path]) -> None:
    _, out = reported
    page = (out / "index.html").read_text(encoding="utf-8")
    plots = sorted(p.name for p in (out / "plots" / "tiny" / "full-cirbench").glob("*.png"))
    assert {"codec_bars_psnr.png", "levels_psnr.png", "inputs_bpp_vs_psnr.png"} <= set(plots)
    assert any(name.endswith("_vs_psnr.png") and not name.startswith("inputs") for name in plots)
    crops = sorted(c.name for c in (out / "crops" / "tiny" / "full-cirbench").glob("*.png"))
    # every (task, image) with a preview (3 images x 3 tasks here), chosen by the leader's gain and loss
    assert len(crops) == 9 and "crop_JPEG_10_img0.png" in crops
    for name in plots:
        assert f"plots/tiny/full-cirbench/{name}" in page
        with Image.open(out / "plots" / "tiny" / "full-cirbench" / name) as image:
            assert image.size[0] > 300 and np.asarray(image.convert("L")).std() > 5
    assert "<td class='method'>identity</td>" in page and "<td class='method'>tv-chambolle</td>" in page
    assert "<script src" not in page and "http" not in page.split("</style>")[1]  # one inline sorter, nothing fetched


def test_side_by_side_crop_shows_hr_lq_and_every_method(reported: tuple[Path, Path]) -> None:
    dataset, out = reported
    ds = BuiltDataset.open(dataset)
    hr, lq = read_rgb(ds.hr_path("img0")), read_rgb(ds.lq_path(ds.task("JPEG_10"), "img0"))
    figure = read_rgb(out / "crops" / "tiny" / "full-cirbench" / "crop_JPEG_10_img0.png")
    height, width = hr.shape[:2]  # 48 x 64: smaller than the 128 px preview, so the whole image is shown
    zoom = panel_scale(height, width)
    top = TITLE_HEIGHT + LABEL_HEIGHT

    def panel(index: int) -> np.ndarray:
        left = index * (width * zoom + PANEL_GAP)
        return figure[top : top + height * zoom : zoom, left : left + width * zoom : zoom]

    assert figure.shape[1] == 3 * width * zoom + 2 * PANEL_GAP  # HR | LQ | tv-chambolle (the LQ shown once)
    assert np.array_equal(panel(0), hr) and np.array_equal(panel(1), lq)
    assert not np.array_equal(panel(2), lq)  # the filter changed the image


def test_report_needs_a_run_it_can_show(tmp_path: Path) -> None:
    dataset = build_tiny(tmp_path, SMALL_CROPS[:1])
    with pytest.raises(ReportError, match="no evaluated run.*no identity row.*crop256"):
        write_report(dataset, tmp_path / "r", protocol="crop256")  # identity cannot run crop256 on 48x64 images
    assert not (dataset / "results" / "runs").is_dir() or not any((dataset / "results" / "runs").iterdir())
    for folder in ("JPEG_10", "JPEG_30", "WEBP_5"):
        shutil.rmtree(dataset / folder)
    with pytest.raises(ReportError, match="no evaluated run"):
        write_report(dataset, tmp_path / "r")
    assert not (tmp_path / "r" / "index.html").exists()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_page_renders_in_headless_chromium(reported: tuple[Path, Path], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    _, out = reported
    shot = tmp_path / "shot.png"
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,900",
        (out / "index.html").resolve().as_uri(),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert pixels.std() > 10  # not a blank page
    header = np.all(np.abs(pixels.astype(int) - HEADER_RGB) <= 2, axis=1).sum()
    best = np.all(np.abs(pixels.astype(int) - BEST_RGB) <= 2, axis=1).sum()
    assert header > 2000 and best > 300  # the leaderboard table's header row and its best cells are drawn
    shutil.copy(shot, out / "screenshot.png")


def test_report_groups_modes_marks_partial_runs_and_covers_several_datasets(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.pyplot as plt
    from test_evaluate import TOY

    from cirbench.compare import plots
    from cirbench.compare.figures import family_means
    from cirbench.compare.leaderboard import build_leaderboard

    first = build_tiny(tmp_path / "a", SMALL_CROPS)
    second = build_tiny(tmp_path / "b", SMALL_CROPS[:2])
    evaluate(first, EvaluationSettings(model="tv-chambolle"))
    evaluate(first, EvaluationSettings(model="identity", method="worst-only", tasks=("JPEG_10",)))
    monkeypatch.syspath_prepend(str(TOY / "src"))
    log = str(tmp_path / "oracle.jsonl")
    evaluate(second, EvaluationSettings(model="cirbench_toy_plugin:create_oracle", model_options={"log": log}))
    import json as _json

    build = _json.loads((second / "build.json").read_text())
    (second / "build.json").write_text(_json.dumps({**build, "dataset": "second"}))
    outcome = write_report([first, second], tmp_path / "report")
    page = outcome.index.read_text()
    assert "id=\"tiny-full-cirbench\"" in page and "id=\"second-full-cirbench\"" in page
    assert "<h4>oracle methods (told the task label at inference)</h4>" in page
    assert "Best and worst images per method" in page
    table = build_leaderboard([BuiltDataset.open(first)]).table
    bars = family_means(table, "psnr", ["JPEG", "WEBP"])
    assert "worst-only" not in set(bars["method"])  # a partial family is not averaged into a bar
    assert plots.method_colour("identity") == plots.IDENTITY_COLOUR
    assert plots.method_colour("tv-chambolle") == plots.method_colour("tv-chambolle") != plots.IDENTITY_COLOUR
    figure, axes = plt.subplots()
    plots._limits(axes, np.array([0.81, 0.83, 0.86]))
    assert axes.get_ylim()[0] > 0.7  # SSIM axes are not drawn from 0
    plt.close(figure)
