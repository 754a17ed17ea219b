"""A build killed with SIGKILL mid-way resumes to exactly what a clean build gives; plugins via entry points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from conftest import shared, write_taskset
from PIL import Image
from test_build import _stable

from cirbench.build.manifest import JOURNAL_NAME

CLI = [sys.executable, "-m", "cirbench"]
TASKS = [
    {"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "params": {"quality": 10}},
    {"name": "HEVC_47", "folder": "HM_47", "codec": "hevc", "family": "HEVC", "level": 47, "params": {"qp": 47}},
    {"name": "VVC_42", "folder": "VTM_42", "codec": "vvc", "family": "VVC", "level": 42, "params": {"qp": 42}},
]


def _sources(folder: Path, count: int) -> Path:
    folder.mkdir()
    image = Image.open(shared("kodak", "kodim05.png"))
    for index in range(count):
        image.crop((index * 60, 40, index * 60 + 160, 168)).save(folder / f"crop{index:02d}.png")
    return folder


def test_sigkill_mid_build_then_resume_equals_a_clean_build(tmp_path: Path) -> None:
    source = _sources(tmp_path / "src", 8)
    taskset = write_taskset(tmp_path / "t.toml", TASKS)
    killed_out, clean_out = tmp_path / "killed", tmp_path / "clean"
    args = [str(source), "--task-set", str(taskset), "--name", "set"]
    proc = subprocess.Popen([*CLI, "build", args[0], str(killed_out), *args[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = killed_out / "set" / JOURNAL_NAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text(encoding="utf-8").count('"kind": "lq"') >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    root = killed_out / "set"
    for png in root.glob("*/*.png"):  # files under final names are complete images
        assert Image.open(png).load() is not None
    journaled = journal.read_text(encoding="utf-8").count('"kind": "lq"')
    assert 4 <= journaled < 24
    resumed = subprocess.run([*CLI, "build", args[0], str(killed_out), *args[1:]], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{journaled} up to date" in " ".join(resumed.stdout.split())
    assert not list(root.rglob("*.part")) and not journal.exists()
    subprocess.run([*CLI, "build", args[0], str(clean_out), *args[1:]], check=True, capture_output=True)
    assert _stable(root).equals(_stable(clean_out / "set"))


PLUGIN = '''
"""A third-party codec: inverts the image (a stand-in for any codec shipped outside cirbench)."""
from dataclasses import dataclass
import numpy as np
from cirbench.codecs import Codec, Encoded

@dataclass(frozen=True)
class NegateParams:
    strength: int = 255

class NegateCodec(Codec):
    name = "negate"
    file_suffix = ".neg"
    Params = NegateParams

    def tool_versions(self):
        return {"negate": "1.0"}

    def _encode(self, rgb):
        header = np.array(rgb.shape[:2], dtype="<u4").tobytes()
        return Encoded(header + (self.params.strength - rgb).tobytes())

    def _decode(self, data):
        h, w = np.frombuffer(data[:8], dtype="<u4")
        return (self.params.strength - np.frombuffer(data[8:], np.uint8).reshape(h, w, 3)).astype(np.uint8)
'''


def test_a_third_party_codec_registers_through_the_entry_point_group(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "negate_codec-1.0.dist-info").mkdir(parents=True)
    (site / "negate_codec.py").write_text(textwrap.dedent(PLUGIN), encoding="utf-8")
    dist = site / "negate_codec-1.0.dist-info"
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: negate-codec\nVersion: 1.0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[cirbench.codecs]\nnegate = negate_codec:NegateCodec\n", encoding="utf-8")
    source = _sources(tmp_path / "src", 2)
    taskset = write_taskset(tmp_path / "t.toml", [{"name": "NEG", "codec": "negate", "family": "NEG", "level": 1, "params": {}}])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([*CLI, "build", str(source), str(tmp_path / "out"), "--task-set", str(taskset)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    decoded = np.asarray(Image.open(tmp_path / "out" / "src" / "NEG" / "crop00.png"))
    original = np.asarray(Image.open(source / "crop00.png").convert("RGB"))
    assert np.array_equal(decoded, original)  # negate twice = lossless
