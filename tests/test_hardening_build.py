"""Hardening of the builder: undecodable names, oversized images, silent wrong data, disk full, kills, options.

Each test reproduces a reported failure (issue 17, items 1-6) through the real builder or CLI.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from conftest import REPO, shared, write_taskset
from PIL import Image

from cirbench.build.builder import BuildOptions, build_dataset
from cirbench.build.manifest import JOURNAL_NAME, ManifestJournal, read_manifest_table
from cirbench.build.sources import load_source
from cirbench.cli import main
from cirbench.codecs import create_codec
from cirbench.errors import CodecError, ConfigError, SourceImageError
from cirbench.fileio import clean_stale_scratch, scratch_root

CIRBENCH = Path(sys.executable).with_name("cirbench")
JPEG = [{"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "id": 0, "params": {"quality": 10}}]
WEBP = [{"name": "WEBP_5", "codec": "webp", "family": "WEBP", "level": 5, "id": 10, "params": {"quality": 5}}]


@pytest.fixture()
def jpeg_webp(tmp_path: Path) -> Path:
    return write_taskset(tmp_path / "jw.toml", JPEG + WEBP)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CIRBENCH), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def _lines(captured) -> str:
    return " ".join((captured.out + " " + captured.err).split())


def test_non_utf8_name_is_refused_in_one_line_and_the_rest_builds(small_sources: Path, tmp_path: Path, jpeg_webp: Path, capsys) -> None:
    bad = small_sources / os.fsdecode(b"\xff\xfe.png")
    os.link(small_sources / "kodim01.png", bad)
    out = tmp_path / "out"
    code = main(["build", str(small_sources), str(out), "--task-set", str(jpeg_webp), "--name", "set"])
    text = _lines(capsys.readouterr())
    assert code == 1 and "\\xff\\xfe.png" in text and "not valid UTF-8" in text
    frame = read_manifest_table(out / "set")
    assert sorted(frame[frame["kind"] == "hr"]["image"]) == ["barbara", "bikes", "kodim01"]
    assert not (out / "set" / JOURNAL_NAME).exists()


def test_a_journal_wedged_by_an_undecodable_row_recovers(small_sources: Path, tmp_path: Path, jpeg_webp: Path) -> None:
    options = BuildOptions(out=tmp_path / "out", source=small_sources, taskset=str(jpeg_webp), name="set")
    assert build_dataset(options).ok
    dataset = tmp_path / "out" / "set"
    row = read_manifest_table(dataset).iloc[0].to_dict()
    row = {k: (None if pd.isna(v) else (int(v) if isinstance(v, np.integer) else v)) for k, v in row.items()}
    row["image"] = row["source_file"] = os.fsdecode(b"\xff\xfe")
    with open(dataset / JOURNAL_NAME, "w", encoding="utf-8") as handle:  # as an older cirbench journaled it
        handle.write(json.dumps(row, default=str) + "\n")
    assert ManifestJournal(dataset).read() == []
    report = build_dataset(options)
    assert report.ok and len(read_manifest_table(dataset)) == 9


def test_an_image_over_a_codec_limit_fails_one_entry_and_the_build_goes_on(tmp_path: Path, jpeg_webp: Path, capsys) -> None:
    source = tmp_path / "src"
    source.mkdir()
    Image.new("RGB", (16400, 16), (90, 120, 30)).save(source / "a_wide.png")
    Image.open(shared("kodak", "kodim01.png")).crop((0, 0, 64, 64)).save(source / "b_small.png")
    code = main(["build", str(source), str(tmp_path / "out"), "--task-set", str(jpeg_webp), "--name", "set"])
    text = _lines(capsys.readouterr())
    assert code == 1 and "a_wide.png" in text and "16383" in text
    frame = read_manifest_table(tmp_path / "out" / "set")
    built = set(zip(frame["image"], frame["task"], strict=True))
    assert {("a_wide", "JPEG_10"), ("b_small", "JPEG_10"), ("b_small", "WEBP_5")} <= built
    assert ("a_wide", "WEBP_5") not in built


@pytest.mark.parametrize(
    ("codec", "options", "size", "limit"),
    [
        ("jpeg", {}, (16, 65504), "65500"),
        ("webp", {}, (16, 16384), "16383"),
        ("hevc", {"qp": 37}, (16, 16896), "16888"),
        ("avc", {"qp": 37}, (16, 16896), "16880"),
        ("vvc", {"qp": 37}, (16, 25344), "25332"),
        ("hevc", {"qp": 37}, (8192, 8192), "35651584"),
        ("compressai", {"quality": 1}, (4096, 4160), "16777216"),
    ],
)
def test_every_codec_names_its_size_limit(codec: str, options: dict, size: tuple[int, int], limit: str) -> None:
    coder = create_codec(codec, **options)
    with pytest.raises(CodecError, match=limit):
        coder.check_size(*size)
    coder.check_size(64, 64)


def test_16_bit_tiff_is_refused_and_exif_orientation_is_applied_and_recorded(tmp_path: Path) -> None:
    import tifffile

    deep = (np.arange(48 * 40 * 3, dtype=np.uint16).reshape(40, 48, 3) * 7) % 65535
    tifffile.imwrite(tmp_path / "deep.tif", deep, photometric="rgb")
    with pytest.raises(SourceImageError, match="more than 8 bits"):
        load_source(tmp_path / "deep.tif")
    rgb = np.random.default_rng(0).integers(0, 256, (20, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "rotated.png", exif=exif)
    source = load_source(tmp_path / "rotated.png")
    assert source.rgb.shape == (40, 20, 3)
    assert np.array_equal(source.rgb, np.rot90(rgb, k=-1))
    assert source.conversion == "EXIF orientation 6 applied"


def test_skipped_folder_entries_are_listed_in_build_json_and_counted(small_sources: Path, tmp_path: Path, jpeg_webp: Path, capsys) -> None:
    (small_sources / "gone.png").symlink_to(tmp_path / "missing.png")
    (small_sources / "loop.png").symlink_to(small_sources / "loop.png")
    (small_sources / "folder.png").mkdir()
    os.mkfifo(small_sources / "pipe.png")
    (small_sources / ".hidden.png").write_bytes(b"x")
    code = main(["build", str(small_sources), str(tmp_path / "out"), "--task-set", str(jpeg_webp), "--name", "set"])
    assert code == 0
    assert "skipped 5 folder entries" in _lines(capsys.readouterr())
    skipped = json.loads((tmp_path / "out" / "set" / "build.json").read_text())["outcome"]["skipped_entries"]
    reasons = dict(line.split(": ", 1) for line in skipped)
    assert set(reasons) == {"gone.png", "loop.png", "folder.png", "pipe.png", ".hidden.png"}
    assert "dangling" in reasons["gone.png"] and "fifo" in reasons["pipe.png"] and "hidden" in reasons[".hidden.png"]


def test_disk_full_while_writing_the_manifest_is_one_line_and_a_rerun_completes(
    small_sources: Path, tmp_path: Path, jpeg_webp: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import cirbench.build.manifest as manifest

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    args = ["build", str(small_sources), str(tmp_path / "out"), "--task-set", str(jpeg_webp), "--name", "set"]
    with monkeypatch.context() as patch:
        patch.setattr(manifest.pq, "write_table", full)
        code = main(args)
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "manifest.parquet" in captured.err and "No space left on device" in captured.err
    assert len(ManifestJournal(tmp_path / "out" / "set").read()) == 9
    assert main(args) == 0
    assert len(read_manifest_table(tmp_path / "out" / "set")) == 9


def test_scratch_folders_of_dead_processes_are_cleaned_by_the_next_build(small_sources: Path, tmp_path: Path, jpeg_webp: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = scratch_root() / f"ffmpeg-{dead.pid}-killed"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "out.bin").write_bytes(b"partial")
    mine = scratch_root() / f"ffmpeg-{os.getpid()}-alive"
    mine.mkdir(exist_ok=True)
    try:
        assert build_dataset(BuildOptions(out=tmp_path / "out", source=small_sources, taskset=str(jpeg_webp))).ok
        assert not stale.exists() and mine.exists()
        assert clean_stale_scratch() == 0
    finally:
        mine.rmdir()


def test_pool_workers_exit_when_the_build_process_is_killed(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("kodim01.png", "kodim02.png", "kodim03.png", "kodim04.png"):
        (source / name).symlink_to(shared("kodak", name))
    slow = write_taskset(tmp_path / "slow.toml", [
        {"name": "VVC_37", "folder": "VTM_37", "codec": "vvc", "family": "VVC", "level": 37, "id": 5, "params": {"qp": 37}},
    ])  # fmt: skip
    parent = subprocess.Popen(
        [str(CIRBENCH), "build", str(source), str(tmp_path / "out"), "--task-set", str(slow), "--jobs", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [p for p in psutil.Process(parent.pid).children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(workers) == 2
        time.sleep(1.0)  # let them start encoding
        parent.kill()
        parent.wait()
        gone, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, [p.pid for p in alive]
    finally:
        parent.kill()


def test_bad_options_and_an_empty_source_folder_are_errors(tmp_path: Path) -> None:
    result = _run("build", str(tmp_path), str(tmp_path / "out"), "--max-pixels", "-5")
    assert result.returncode == 2 and "--max-pixels" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "empty").mkdir()
    result = _run("build", str(tmp_path / "empty"), str(tmp_path / "out"))
    assert result.returncode == 1 and "holds no image files" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(ConfigError):
        BuildOptions(out=tmp_path, max_pixels=0)


def test_a_registry_first_used_from_several_threads_is_never_seen_half_loaded() -> None:
    import time as _time
    from concurrent.futures import ThreadPoolExecutor

    from cirbench.registry import Registry

    class SlowRegistry(Registry):
        def _load_entries(self) -> None:  # importing modules takes a while; they register one by one
            for name in ("a", "b", "c"):
                _time.sleep(0.05)
                self.register(name)(object())

    registry = SlowRegistry("thing", package="cirbench.codecs", group="none")
    with ThreadPoolExecutor(6) as pool:
        seen = list(pool.map(lambda _: registry.names(), range(6)))
    assert all(names == ["a", "b", "c"] for names in seen)


def test_slowest_codecs_are_scheduled_first() -> None:
    from cirbench.build.builder import _by_cost
    from cirbench.build.planning import TaskPlan
    from cirbench.tasks import load_taskset

    plans = [TaskPlan(task) for task in load_taskset("moe-diffir-21").tasks if task.kind == "traditional"]
    order = [group[0].task.codec for group in _by_cost(plans)]
    assert order == ["vvc", "hevc", "webp", "jpeg"]
