"""benchmarks/gpu_session.sh --smoke: every step of the GPU session at toy size on CPU, so it is known to work
before a GPU is lent (build, calibrated training, LIVE1 evaluation and verdict, benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.slow
def test_gpu_session_smoke_runs_every_step_and_writes_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "session"
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh"), "--smoke"], cwd=REPO,
                            env={**os.environ, "OUT": str(out)}, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((out / "session.json").read_text())
    assert all(step["status"] == "ok" for step in record["steps"].values()), record["steps"]
    assert {"build", "train", "evaluate", "bench", "evaluate_promptcir_s", "bench_metrics"} <= set(record["steps"])
    weights = out / "promptcir-s.safetensors"
    assert weights.stat().st_size > 1_000_000 and len(record["weights"]["sha256"]) == 64
    assert set(record["live1_psnr_gain_db"]) == {"JPEG_10", "WEBP_1"} and record["verdict"]
    assert "| promptcir-s |" in (out / "live1_leaderboard.md").read_text()
    for name in ("bench_metrics", "bench_evaluate", "bench_learned_codecs", "bench_sspir"):
        assert json.loads((out / "bench" / f"{name}.json").read_text())
    assert (out / "promptcir-s" / "history.json").is_file()
