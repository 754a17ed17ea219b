"""End to end through `cirbench build`: the tiny trained CompressAI fixture as a learned task next to JPEG.

Checks the layout, real bitstream sizes behind bpp, recorded parameters and byte-identical rebuilds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_taskset
from PIL import Image

from cirbench.build.manifest import read_manifest_table
from cirbench.cli import main

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny-factorized-cirbench.pth.tar"


@pytest.fixture()
def learned_taskset(tmp_path: Path) -> Path:
    tasks = [
        {"name": "JPEG_10", "codec": "jpeg", "family": "JPEG", "level": 10, "id": 0, "params": {"quality": 10}},
        {"name": "TINY_1", "codec": "compressai", "family": "C_PSNR", "level": 1, "kind": "learned",
         "params": {"model": "bmshj2018-factorized", "quality": 1, "checkpoint": str(TINY)}},
        {"name": "PSNR_1", "codec": "compressai", "family": "C_PSNR", "level": 1, "id": 12, "kind": "learned",
         "params": {"metric": "mse", "quality": 1}},
    ]
    return write_taskset(tmp_path / "learned.toml", tasks, {"compressai": {"device": "cpu"}})


def test_build_codes_learned_tasks_and_rebuilds_byte_identically(
    small_sources: Path, tmp_path: Path, learned_taskset: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CIRBENCH_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    args = ["build", str(small_sources), str(tmp_path / "a"), "--task-set", str(learned_taskset), "--keep-bitstreams"]
    assert main(args) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "unavailable: 1 learned task(s) (PSNR_1)" in text  # zoo file absent
    root = tmp_path / "a" / "src"
    unavailable = json.loads((root / "build.json").read_text())["outcome"]["unavailable_tasks"]
    assert "cheng2020-anchor-1-dad2ebff.pth.tar" in unavailable["PSNR_1"]
    frame = read_manifest_table(root)
    tiny = frame[frame["task"] == "TINY_1"]
    assert len(tiny) == 3 and not (root / "PSNR_1").exists()
    for row in tiny.to_dict(orient="records"):
        decoded = np.asarray(Image.open(root / row["output_file"]))
        assert decoded.shape == (row["height"], row["width"], 3)
        assert row["padded_height"] % 64 == 0 and row["padded_width"] % 64 == 0
        bitstream = (root / row["bitstream_file"]).read_bytes()
        assert bitstream[:2] == b"CA" and len(bitstream) == row["bitstream_bytes"]
        assert row["bpp"] == pytest.approx(8 * len(bitstream) / (row["height"] * row["width"]))
        params = json.loads(row["params_json"])
        assert params == {"model": "bmshj2018-factorized", "metric": "mse", "quality": 1, "checkpoint": str(TINY), "device": "cpu"}
        versions = json.loads(row["tool_versions_json"])
        assert versions["weights"] == TINY.name and len(versions["weights_sha256"]) == 64
        source = np.asarray(Image.open(root / "HR" / f"{row['image']}.png")).astype(np.float64)
        flat = np.broadcast_to(source.mean(axis=(0, 1)), source.shape)
        flat_psnr = 10 * np.log10(255**2 / np.mean((source - flat) ** 2))
        assert row["psnr"] > flat_psnr + 1.5  # the tiny model codes structure, not just the mean colour
    assert main(["build", str(small_sources), str(tmp_path / "b"), "--task-set", str(learned_taskset), "-j", "2"]) == 0
    again = read_manifest_table(tmp_path / "b" / "src")
    stable = ["image", "task", "output_sha256", "bitstream_sha256", "bitstream_bytes"]
    first = frame[stable].sort_values(["image", "task"]).reset_index(drop=True)
    second = again[stable].sort_values(["image", "task"]).reset_index(drop=True)
    assert first.equals(second)
