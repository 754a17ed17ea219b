"""Hardening of the builder, round 2: multi-frame sources, TIFF layouts Pillow cannot read, float TIFFs, two files
with one stem, 254-byte names, unsafe --name, and ffmpeg children that must die with a killed build.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import tifffile
from conftest import shared, write_taskset
from PIL import Image

from cirbench.build.builder import BuildOptions, build_dataset
from cirbench.build.planning import check_dataset_name
from cirbench.build.sources import load_source
from cirbench.errors import ConfigError, SourceImageError

JPEG = [{"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "id": 0, "params": {"quality": 10}}]
HEVC = [{"name": "HEVC_42", "folder": "HM_42", "codec": "hevc", "family": "HEVC", "level": 42, "id": 7, "params": {"qp": 42}}]


def _rgb(height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    crop = np.asarray(Image.open(shared("kodak", "kodim05.png")).convert("RGB"))
    top = 50 + 7 * seed
    return np.ascontiguousarray(crop[top : top + height, 60 : 60 + width])


@pytest.mark.parametrize(
    ("name", "write", "fragment"),
    [
        ("a.png", lambda p, a, b: a.save(p, save_all=True, append_images=[b]), "animated PNG with 2 frames"),
        ("a.gif", lambda p, a, b: a.save(p, save_all=True, append_images=[b, a]), "animated GIF with 3 frames"),
        ("a.webp", lambda p, a, b: a.save(p, save_all=True, append_images=[b], lossless=True), "animated WEBP with 2 frames"),
        ("a.tif", lambda p, a, b: tifffile.imwrite(p, np.stack([np.asarray(a), np.asarray(b)]), photometric="rgb"),
         "multipage TIFF with 2 pages"),
    ],
)  # fmt: skip
def test_multi_frame_sources_are_refused_with_their_frame_count(tmp_path: Path, name: str, write, fragment: str) -> None:
    path = tmp_path / name
    write(path, Image.fromarray(_rgb()), Image.fromarray(_rgb(seed=1)))
    with pytest.raises(SourceImageError, match=fragment):
        load_source(path)


def test_a_tiff_pillow_cannot_read_builds_through_tifffile_and_a_float_tiff_says_so(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    rgb = _rgb()
    tifffile.imwrite(source / "pngstrips.tif", rgb, photometric="rgb", compression="png")  # valid, lossless, 8-bit
    with pytest.raises(OSError):
        Image.open(source / "pngstrips.tif").load()  # what Pillow makes of it
    tifffile.imwrite(source / "float.tif", rgb.astype(np.float32) / 255, photometric="rgb")
    with pytest.raises(SourceImageError, match="TIFF with 32-bit float samples"):
        load_source(source / "float.tif")
    report = build_dataset(BuildOptions(out=tmp_path / "out", source=source, taskset=str(write_taskset(tmp_path / "t.toml", JPEG))))
    assert report.sources == 1 and any("float.tif" in line and "32-bit float samples" in line for line in report.failures)
    hr = np.asarray(Image.open(tmp_path / "out" / "src" / "HR" / "pngstrips.png"))
    assert np.array_equal(hr, rgb)
    assert load_source(source / "pngstrips.tif").conversion == "read with tifffile"


def test_of_two_files_with_one_stem_the_lossless_one_is_used(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    rgb = _rgb()
    Image.fromarray(rgb).save(source / "bird.png")
    Image.fromarray(rgb).save(source / "bird.jpg", quality=60)
    Image.fromarray(_rgb(seed=2)).save(source / "kite.bmp")
    Image.fromarray(_rgb(seed=2)).save(source / "kite.png")  # two lossless files: still a clash, named
    report = build_dataset(BuildOptions(out=tmp_path / "out", source=source, taskset=str(write_taskset(tmp_path / "t.toml", JPEG))))
    record = json.loads((tmp_path / "out" / "src" / "build.json").read_text())
    assert "bird.jpg: same stem as bird.png, which is lossless and is used" in record["outcome"]["skipped_entries"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "src" / "HR" / "bird.png")), rgb)
    assert [line for line in report.failures if "same stem" in line] and "kite" in report.failures[0]


def test_a_254_byte_file_name_builds(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    name = "b" * 250 + ".png"
    assert len(os.fsencode(name)) == 254
    Image.fromarray(_rgb()).save(source / name)
    tasks = write_taskset(tmp_path / "t.toml", JPEG + HEVC)
    report = build_dataset(BuildOptions(out=tmp_path / "out", source=source, taskset=str(tasks), keep_bitstreams=True))
    assert report.ok and report.built == 2, report.failures
    assert (tmp_path / "out" / "src" / "HM_42" / name).is_file()


@pytest.mark.parametrize("name", ["../escape", "a/b", "/abs", "..", ".", "", "x\\y"])
def test_a_dataset_name_with_a_path_in_it_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="must be one folder name"):
        check_dataset_name(name)
    with pytest.raises(ConfigError):
        BuildOptions(out=tmp_path / "out", name=name)
    assert check_dataset_name("LIVE1 x2") == "LIVE1 x2"


_KILLED_ENCODER = """
import sys, ffmpeg
from cirbench.codecs._ffmpeg import run_ffmpeg
marker = sys.argv[1]
# a realtime 60 s source: ffmpeg runs until it is killed
run_ffmpeg(lambda out: ffmpeg.input("testsrc=duration=60:size=32x32:rate=5", f="lavfi", re=None)
           .output(out, f="rawvideo", metadata=f"comment={marker}"), b"", "test")
"""


def _ffmpeg_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(marker in part for part in cmdline) and "ffmpeg" in os.path.basename(cmdline[0] if cmdline else ""):
            found.append(proc)
    return found


def test_an_ffmpeg_child_dies_when_its_build_process_is_killed(tmp_path: Path) -> None:
    marker = f"cirbench-test-{os.getpid()}-{time.time_ns()}"
    parent = subprocess.Popen([sys.executable, "-c", _KILLED_ENCODER, marker])
    try:
        deadline = time.monotonic() + 30
        while not _ffmpeg_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        children = _ffmpeg_with(marker)
        assert children, "ffmpeg never started"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"ffmpeg outlived its killed parent: {[p.pid for p in alive]}"
    finally:
        for proc in _ffmpeg_with(marker):
            proc.kill()
