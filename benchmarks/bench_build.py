"""Builder overhead and parallel speed-up on Kodak x the 12 traditional MoE-DiffIR tasks.

Compares `cirbench build` wall time at --jobs 1 and --jobs 2 with the sum of the raw encode+decode times of the
same codec calls made in-process (targets: --jobs 1 overhead <= 3 %, --jobs 2 wall <= 1.05x raw/2). Each build's
own codec seconds (from its manifest) are reported too: on a noisy VM they separate scheduling overhead from the
run-to-run drift of the codecs themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cirbench.build.builder import BuildOptions, build_dataset
from cirbench.build.provenance import environment
from cirbench.codecs import create_codec
from cirbench.tasks import load_taskset

DEFAULT_KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def traditional_tasks() -> list:
    return [t for t in load_taskset("moe-diffir-21").tasks if t.kind == "traditional"]


def raw_codec_seconds(images: list[Path], tasks: list) -> float:
    """Sum of encode+decode seconds of every (image, task) call, made in this process."""
    total = 0.0
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for task in tasks:
            result = task.create_codec().roundtrip(rgb)
            total += result.encode_seconds + result.decode_seconds
    return total


def build_seconds(source: Path, jobs: int, names: list[str]) -> tuple[float, float]:
    """(wall seconds, the build's own encode+decode seconds summed over its manifest rows)."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="cirbench-bench-") as out:
        start = time.perf_counter()
        report = build_dataset(BuildOptions(out=Path(out), source=source, name="kodak", tasks=names, jobs=jobs))
        elapsed = time.perf_counter() - start
        if not report.ok:
            raise SystemExit(f"build failed: {report.failures[:3]}")
        rows = pd.read_parquet(Path(out) / "kodak" / "manifest.parquet")
        lq = rows[rows["kind"] == "lq"]
        return elapsed, float((lq["encode_seconds"] + lq["decode_seconds"]).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kodak", type=Path, default=DEFAULT_KODAK)
    parser.add_argument("--images", type=int, default=24, help="use the first N Kodak images")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_build.json"))
    args = parser.parse_args()
    images = sorted(args.kodak.glob("*.png"))[: args.images]
    tasks = traditional_tasks()
    names = [t.name for t in tasks]
    with tempfile.TemporaryDirectory(prefix="cirbench-bench-src-") as tmp:
        source = Path(tmp) / "kodak"
        source.mkdir()
        for path in images:
            shutil.copy(path, source / path.name)
        create_codec("vvc", qp=37).tool_versions()  # warm caches outside the timed regions
        raw = raw_codec_seconds(images, tasks)
        jobs1, own1 = build_seconds(source, 1, names)
        jobs2, own2 = build_seconds(source, 2, names)
    result = {
        "benchmark": "bench_build",
        "images": len(images),
        "tasks": names,
        "entries": len(images) * len(tasks),
        "raw_encode_decode_seconds": round(raw, 3),
        "build_jobs1_seconds": round(jobs1, 3),
        "build_jobs2_seconds": round(jobs2, 3),
        "build_jobs1_codec_seconds": round(own1, 3),
        "build_jobs2_codec_seconds": round(own2, 3),
        "overhead_jobs1": round((jobs1 - raw) / raw, 4),
        "overhead_jobs1_vs_own_codec": round((jobs1 - own1) / own1, 4),
        "jobs2_vs_limit": round(jobs2 / (raw / 2), 3),
        "jobs2_vs_own_codec_limit": round(jobs2 / (own2 / 2), 3),
        "speedup_jobs2_vs_jobs1": round(jobs1 / jobs2, 3),
        "targets": {"overhead_jobs1_max": 0.03, "jobs2_vs_limit_max": 1.05},
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "environment": environment(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "environment"}, indent=2))


if __name__ == "__main__":
    main()
