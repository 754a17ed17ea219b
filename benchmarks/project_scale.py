"""A DF2K-scale projection of the build: cost per entry by codec and image size, Dask's per-task overhead, and the
projected wall time and per-worker memory of DF2K x 21 tasks on 1, 8, 64 and 512 workers.

Validated by prediction: the model predicts a 48-image build through a 2-worker Dask LocalCluster, which is then run
and timed. Writes benchmarks/results/project_scale.json.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from cirbench.build.builder import CODEC_COST, ENTRIES_PER_BATCH, BuildOptions, build_dataset
from cirbench.fileio import encode_png, write_text_atomic
from cirbench.tasks import load_taskset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DF2K_IMAGES, DF2K_MEGAPIXELS = 3450, 2.77  # DIV2K 900 + Flickr2K 2650 (mean about 2040 x 1360)
LEARNED_S_PER_MP = {"compressai": 88.0, "hific": 78.0}  # encode + decode on one CPU core (bench_learned_codecs)


def _codec_calls(task, rgb: np.ndarray) -> float:
    start = time.perf_counter()
    result = task.create_codec().roundtrip(rgb)
    encode_png(result.decoded)  # the builder's own per-entry work: the PNG of the decoded image
    return time.perf_counter() - start


def _fit_task(name: str, sample: int) -> tuple[str, dict[str, float]]:
    """Seconds = a + b * megapixels for one task, fitted on crops of two sizes of the sample images."""
    task = next(t for t in load_taskset("moe-diffir-21").tasks if t.name == name)
    points = []
    for path in sorted((SHARED / "kodak").glob("*.png"))[:sample]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for side in (256, None):
            crop = rgb if side is None else np.ascontiguousarray(rgb[:side, :side])
            points.append((crop.shape[0] * crop.shape[1] / 1e6, _codec_calls(task, crop)))
    x, y = np.array(points).T
    slope, intercept = np.polyfit(x, y, 1)
    return name, {"codec": task.codec, "a_s": round(float(max(intercept, 0.0)), 4), "b_s_per_mp": round(float(slope), 4)}


def cost_model(tasks, sample: int, workers: int = 2) -> dict[str, dict[str, float]]:
    """Per task: seconds per entry, measured with ``workers`` processes busy at once (as in the build: cores share
    caches and memory bandwidth, so a busy machine codes each entry slower than a quiet one)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(pool.map(_fit_task, [t.name for t in tasks], [sample] * len(tasks)))


def source_seconds_per_mp(sample: int) -> float:
    """The source stage: decode, check and write HR/<image>.png, per megapixel."""
    from cirbench.build.sources import load_source

    total, megapixels = 0.0, 0.0
    for path in sorted((SHARED / "kodak").glob("*.png"))[:sample]:
        start = time.perf_counter()
        source = load_source(path)
        encode_png(source.rgb)
        total += time.perf_counter() - start
        megapixels += source.height * source.width / 1e6
    return total / megapixels


def dask_overhead(tasks: int = 200) -> float:
    """Seconds of scheduling overhead per submitted task on a 2-worker LocalCluster (no-op tasks)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:  # fmt: skip
        client.gather(client.map(abs, range(10)))  # warm up
        start = time.perf_counter()
        client.gather(client.map(abs, range(tasks), pure=False))
        return (time.perf_counter() - start) * 2 / tasks  # two workers share the wall time


def predict(model: dict, megapixels: list[float], workers: int, overhead: float, startup: float,
            source_s_per_mp: float = 0.0) -> float:  # fmt: skip
    """Wall seconds of a build: the builder's own schedule replayed on ``workers`` (the source stage, then units
    of ENTRIES_PER_BATCH entries, slowest codecs first, image by image), each unit to the first free worker."""
    units = [source_s_per_mp * mp + overhead for mp in megapixels]  # the source stage: one unit per image
    finish = _replay(units, workers, 0.0)
    by_codec: dict[str, list[dict]] = {}
    for entry in model.values():
        by_codec.setdefault(entry["codec"], []).append(entry)
    entries = [m["a_s"] + m["b_s_per_mp"] * mp
               for group in sorted(by_codec.values(), key=lambda g: -CODEC_COST.get(g[0]["codec"], 1.0))
               for mp in megapixels for m in group]  # fmt: skip
    batches = [sum(entries[i : i + ENTRIES_PER_BATCH]) + overhead for i in range(0, len(entries), ENTRIES_PER_BATCH)]
    return _replay(batches, workers, finish) + startup


def _replay(units: list[float], workers: int, start: float) -> float:
    """List scheduling in submission order: each unit goes to the worker that frees first; the last finish time."""
    free = [start] * workers
    heapq.heapify(free)
    for cost in units:
        heapq.heappush(free, heapq.heappop(free) + cost)
    return max(free)


def worker_memory_mib(megapixels: float) -> float:
    """Peak resident memory of one entry's work at this size: the source, its YUV planes, decoded image, PNG."""
    side = int((megapixels * 1e6 * 1.5) ** 0.5)
    rgb = np.random.default_rng(0).integers(0, 256, (side * 2 // 3, side, 3), dtype=np.uint8)
    task = next(t for t in load_taskset("moe-diffir-21").tasks if t.codec == "vvc")
    before = psutil.Process().memory_info().rss
    _codec_calls(task, rgb)
    return (psutil.Process().memory_info().rss - before) / 2**20 + 180.0  # + the interpreter and imports (~180 MiB)


def _timed_cluster_build(files: list[Path], tasks, scheduler: str, tmp: Path, crop: int = 0) -> tuple[float, bool]:
    source = tmp / f"subset-{len(files)}-{crop}"
    source.mkdir()
    for path in files:
        if crop:
            Image.open(path).convert("RGB").crop((0, 0, crop, crop)).save(source / f"{path.stem}.png")
        else:
            shutil.copy(path, source / path.name)
    start = time.perf_counter()
    report = build_dataset(BuildOptions(out=tmp / f"out-{len(files)}-{crop}", source=source,
                                        tasks=[t.name for t in tasks], scheduler=scheduler))  # fmt: skip
    return time.perf_counter() - start, report.ok


def _megapixels(files: list[Path]) -> list[float]:
    """Megapixels per image in the order the builder codes them (sorted file stems)."""
    sizes = [Image.open(p).size for p in sorted(files, key=lambda p: p.stem)]
    return [w * h / 1e6 for w, h in sizes]


def validate(model: dict, overhead: float, startup: float, tasks, count: int, source_s_per_mp: float) -> dict:
    """Calibrate the cluster on two small builds, then predict a disjoint ``count``-image build of the same
    population (Kodak and CBSD68 about half each), run it on the same 2-worker LocalCluster and compare.

    Calibration: a 64x64 build of one image measures the fixed cost (scheduling, tool probes, manifest); 6 images
    (3 Kodak, 3 CBSD68, none in the validation set) give the efficiency of the per-entry work, (measured - fixed) /
    model. Prediction = fixed + efficiency x model. Codec time depends on content (VVC most), so the calibration
    images come from the validated population, not from another test set.
    """
    from distributed import LocalCluster

    kodak, cbsd68 = sorted((SHARED / "kodak").glob("*.png")), sorted((SHARED / "cbsd68").glob("*.png"))
    calibration = kodak[-3:] + cbsd68[-3:]
    from_kodak = min(count // 2, len(kodak) - 3)
    files = kodak[:from_kodak] + cbsd68[: count - from_kodak]
    with tempfile.TemporaryDirectory() as tmp, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:  # fmt: skip
        fixed, _ = _timed_cluster_build(calibration[:1], tasks, cluster.scheduler_address, Path(tmp), crop=64)
        small, _ = _timed_cluster_build(calibration, tasks, cluster.scheduler_address, Path(tmp))
        work = predict(model, _megapixels(calibration), 2, overhead, 0.0, source_s_per_mp)
        efficiency = max(small - fixed, 1e-3) / work
        predicted = fixed + efficiency * predict(model, _megapixels(files), 2, overhead, 0.0, source_s_per_mp)
        measured, ok = _timed_cluster_build(files, tasks, cluster.scheduler_address, Path(tmp))
    return {"images": len(files), "entries": len(files) * len(tasks), "fixed_s": round(fixed, 1),
            "efficiency_factor": round(efficiency, 3), "predicted_s": round(predicted, 1), "measured_s": round(measured, 1),
            "error": round((predicted - measured) / measured, 4),
            "within_15_percent": abs(predicted - measured) <= 0.15 * measured, "build_ok": ok}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=int, default=2, help="Kodak images used to fit the cost model")
    parser.add_argument("--validate", type=int, default=48, help="images of the validation build (0: skip)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "project_scale.json")
    args = parser.parse_args()
    tasks = [t for t in load_taskset("moe-diffir-21").tasks if t.kind == "traditional"]
    model = cost_model(tasks, args.sample)
    source_cost = source_seconds_per_mp(args.sample)
    overhead, startup = dask_overhead(), 3.0
    traditional = [DF2K_MEGAPIXELS] * DF2K_IMAGES
    # 6 Cheng2020 tasks (C_PSNR, C_SSIM) and 3 HiFiC tasks, on CPU cores
    learned_work = (6 * LEARNED_S_PER_MP["compressai"] + 3 * LEARNED_S_PER_MP["hific"]) * DF2K_MEGAPIXELS * DF2K_IMAGES
    memory = round(worker_memory_mib(DF2K_MEGAPIXELS), 0)
    validation = validate(model, overhead, startup, tasks, args.validate, source_cost) if args.validate else None
    efficiency = validation["efficiency_factor"] if validation else 1.0  # the cluster's measured efficiency
    projection = {}
    for workers in (1, 8, 64, 512):
        wall = efficiency * (predict(model, traditional, workers, overhead, startup, source_cost) + learned_work / workers)
        projection[str(workers)] = {"wall_hours": round(wall / 3600, 2), "per_worker_memory_mib": memory}
    result = {
        "benchmark": "DF2K x 21 build projection",
        "df2k": {"images": DF2K_IMAGES, "mean_megapixels": DF2K_MEGAPIXELS, "tasks": 21},
        "cost_model_per_task": model, "cost_model_note": "fitted with 2 processes coding at once", "dask_overhead_s_per_unit": round(overhead, 5),
        "learned_s_per_mp_cpu": LEARNED_S_PER_MP, "projection": projection,
        "source_stage_s_per_mp": round(source_cost, 4),
        "validation": validation,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }  # fmt: skip
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
