"""Benchmark of `leaderboard` + `report` end to end, on CPU: 10 methods x 21 tasks x 29 images x 4 metrics.

A real build (29 small crops, 21 JPEG tasks named like the 7 families of the benchmark, so building takes seconds)
and 10 run folders written through the results store with synthetic scores and previews; then the timed part:
build_leaderboard (paired bootstrap, 1000 resamples, Δ intervals, best/tied marks) and write_report (plots, crops,
per-image table, downloads). Target: <= 10 s. Writes benchmarks/results/bench_compare.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cirbench.build.builder import BuildOptions, build_dataset
from cirbench.compare.leaderboard import build_leaderboard
from cirbench.compare.report import write_report
from cirbench.compare.statistics import BootstrapSettings
from cirbench.dataset.reader import BuiltDataset
from cirbench.evaluation.protocols import preview_box
from cirbench.evaluation.results import ResultsStore, scores_frame
from cirbench.fileio import encode_png, write_bytes_atomic, write_text_atomic

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("JPEG", "VVC", "HEVC", "WEBP", "C_PSNR", "C_SSIM", "HIFIC")
METRICS = ("psnr", "ssim", "ms_ssim", "lpips")


def _taskset(path: Path) -> Path:
    lines = ["[taskset]", 'name = "bench21"', ""]
    for f, family in enumerate(FAMILIES):
        for level in range(3):
            lines += ["[[task]]", f'name = "{family}_{level + 1}"', 'codec = "jpeg"', f'family = "{family}"',
                      f"level = {level + 1}", f"id = {3 * f + level}", f"params = {{ quality = {10 + 10 * level} }}", ""]  # fmt: skip
    path.write_text("\n".join(lines))
    return path


def _dataset(root: Path, images: int) -> BuiltDataset:
    source = root / "src"
    source.mkdir(parents=True)
    kodak = sorted((REPO.parent / "shared" / "data" / "kodak").glob("*.png"))
    for i in range(images):
        image = Image.open(kodak[i % len(kodak)]).convert("RGB")
        image.crop((8 * i, 8 * i, 8 * i + 96, 8 * i + 64)).save(source / f"img{i:02d}.png")
    build_dataset(BuildOptions(out=root / "out", source=source, taskset=str(_taskset(root / "t.toml")), name="live1"))
    return BuiltDataset.open(root / "out" / "live1")


def _runs(ds: BuiltDataset, methods: int, seed: int = 0) -> None:
    """``methods`` complete runs (identity first) with synthetic per-image scores and one preview per task."""
    rng = np.random.default_rng(seed)
    store = ResultsStore(ds.results_dir())
    for m in range(methods):
        name = "identity" if m == 0 else f"method{m}"
        folder = store.run_folder(name, "full", "cirbench", f"{m:012d}")
        rows = []
        for task in ds.tasks:
            for image in ds.images:
                base = {"psnr": 28.0, "ssim": 0.8, "ms_ssim": 0.9, "lpips": 0.2}
                for metric in METRICS:
                    gain = 0.05 * m * (1 if metric != "lpips" else -0.01)
                    rows.append({"dataset": ds.name, "image": image, "task": task.name, "codec": task.family,
                                 "level": str(task.level), "method": name, "metric": metric,
                                 "value": base[metric] + gain + rng.normal(0, 0.02)})  # fmt: skip
            hr = np.asarray(Image.open(ds.lq_path(task, ds.images[0])).convert("RGB"))
            crop = preview_box(*hr.shape[:2]).cut(hr)
            write_bytes_atomic(folder.previews_dir / task.folder / f"{ds.images[0]}.png", encode_png(crop))
        folder.write_part("all", scores_frame(rows))
        folder.finalise()
        record = {"method": name, "protocol": "full", "profile": "cirbench", "mode": "blind", "status": "complete",
                  "identity": {"model": name}, "model": {"name": name}, "tasks_complete": ds.task_names(),
                  "is_result": True, "created_utc": f"2026-01-01T00:00:{m:02d}+00:00",
                  "updated_utc": f"2026-01-01T00:00:{m:02d}+00:00"}  # fmt: skip
        folder.write_record(record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_compare.json")
    parser.add_argument("--images", type=int, default=29)
    parser.add_argument("--methods", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cirbench-bench-compare-") as tmp:
        ds = _dataset(Path(tmp), args.images)
        _runs(ds, args.methods)
        settings = BootstrapSettings(resamples=args.resamples)
        board_s, report_s = [], []
        for i in range(args.repeat):
            start = time.perf_counter()
            board = build_leaderboard([ds], bootstrap=settings)
            board_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            outcome = write_report(ds, Path(tmp) / f"report{i}")
            report_s.append(time.perf_counter() - start)
        best = min(b + r for b, r in zip(board_s, report_s, strict=True))
        result = {
            "benchmark": "leaderboard + report end to end (paired bootstrap, Δ intervals, marks, plots, crops, pages)",
            "images": len(ds.images), "tasks": len(ds.tasks), "metrics": len(METRICS), "methods": args.methods,
            "resamples": args.resamples, "table_columns": int(board.table.shape[1]),
            "plots": len(outcome.plots), "crops": len(outcome.crops),
            "leaderboard_seconds": round(min(board_s), 3), "report_seconds": round(min(report_s), 3),
            "best_seconds": round(best, 3), "target_seconds": 10.0, "met": best <= 10.0,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        }  # fmt: skip
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
