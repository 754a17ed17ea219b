"""Benchmark of `cirbench evaluate` overhead: (evaluate wall time - pure model time) / pure model time.

Runs identity and a small conv net on CPU (and CUDA when present) at several batch sizes; writes
benchmarks/results/bench_evaluate.json. Target: <= 3 % on GPU at batch >= 8 (metrics of the profile included).
`--identity-on DATASET` times the whole CLI on a built dataset instead (target: LIVE1 x 12 tasks <= 20 s, 2 cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # so "bench_evaluate:create_small_conv" imports

from cirbench.models import ModelInfo  # noqa: E402


class SmallConvNet(torch.nn.Module):
    """A 6-layer, 64-channel residual conv net: a stand-in for a light restoration network."""

    def __init__(self, width: int = 64, depth: int = 6) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU()]
        for _ in range(depth - 2):
            layers += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU()]
        layers.append(torch.nn.Conv2d(width, 3, 3, padding=1))
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SmallConvModel:
    info = ModelInfo(name="small-conv", version="seed0", needs_task_label=False)

    def __init__(self, device: str) -> None:
        torch.manual_seed(0)
        self.network = SmallConvNet().to(device).eval()

    def restore(self, lq: torch.Tensor, task) -> torch.Tensor:
        return self.network(lq).clamp(0.0, 1.0)

    def to(self, device: str) -> SmallConvModel:
        self.network.to(device)
        return self


def create_small_conv(checkpoint=None, device="cpu") -> SmallConvModel:
    return SmallConvModel(device)


def build_dataset(root: Path, images: int, size: int) -> Path:
    from PIL import Image

    from cirbench.build.builder import BuildOptions
    from cirbench.build.builder import build_dataset as build

    source = root / "src"
    source.mkdir(parents=True)
    files = sorted((SHARED / "kodak").glob("*.png"))
    for index in range(images):
        with Image.open(files[index % len(files)]) as image:
            left = (index // len(files)) * size % max(1, image.width - size)
            image.convert("RGB").crop((left, 0, left + size, size)).save(source / f"b{index:03d}.png")
    taskset = root / "bench.toml"
    taskset.write_text(
        '[taskset]\nname = "bench"\n[[task]]\nid = 0\nname = "JPEG_10"\ncodec = "jpeg"\nfamily = "JPEG"\n'
        'level = 10\nparams = { quality = 10 }\n',
        encoding="utf-8",
    )
    build(BuildOptions(out=root / "out", source=source, taskset=str(taskset), name="bench"))
    return root / "out" / "bench"


def pure_model_seconds(spec: str, dataset: Path, device: str, batch: int, repeats: int) -> float:
    """Model time alone: every batch already decoded and on the device; best of ``repeats``."""
    from cirbench.dataset.reader import BuiltDataset, read_rgb, to_tensor
    from cirbench.models import load_model

    ds = BuiltDataset.open(dataset)
    model = load_model(spec, device=device).to(device)
    task = ds.tasks[0]
    images = [to_tensor(read_rgb(ds.lq_path(task, s))) for s in ds.images]
    batches = [torch.cat(images[i : i + batch]).to(device) for i in range(0, len(images), batch)]
    best = float("inf")
    for _ in range(repeats + 1):  # the first pass warms up (cuDNN autotune, allocator)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            for lq in batches:
                model.restore(lq, None)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def evaluate_seconds(spec: str, dataset: Path, device: str, batch: int, profile: str) -> tuple[float, dict]:
    from cirbench.evaluation.evaluate import EvaluationSettings, evaluate

    settings = EvaluationSettings(model=spec, device=device, batch=batch, profile=profile, force=True)
    evaluate(dataset, settings)  # warm-up run (imports, metric construction, cuDNN)
    start = time.perf_counter()
    outcome = evaluate(dataset, settings)
    return time.perf_counter() - start, outcome.record["timings"]


def identity_cli_seconds(dataset: Path, repeats: int) -> dict:
    """Wall time of the whole `cirbench evaluate DATASET -m identity --metrics psnr,ssim` command (start-up, decode,
    scoring, writes), best and all of ``repeats`` runs: the LIVE1 x 12 traditional tasks figure of the README."""
    import subprocess

    command = [sys.executable, "-m", "cirbench", "evaluate", str(dataset), "-m", "identity", "--metrics", "psnr,ssim",
               "--force"]  # fmt: skip
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        runs.append(round(time.perf_counter() - start, 2))
    from cirbench.dataset.reader import BuiltDataset

    ds = BuiltDataset.open(dataset)
    return {"dataset": str(dataset), "pairs": len(ds.images) * len(ds.tasks), "tasks": len(ds.tasks),
            "threads": torch.get_num_threads(), "best_s": min(runs), "runs_s": runs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identity-on", type=Path, default=None,
                        help="only time `cirbench evaluate` of identity (PSNR+SSIM) on this built dataset")  # fmt: skip
    parser.add_argument("--images", type=int, default=16, help="256x256 crops of Kodak, coded as JPEG q10")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--profile", default="cirbench")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_evaluate.json")
    args = parser.parse_args()
    if args.identity_on is not None:
        result = identity_cli_seconds(args.identity_on, max(1, args.repeats + 1))
        print(json.dumps(result), flush=True)
        from cirbench.fileio import write_text_atomic

        write_text_atomic(args.out.with_name("bench_evaluate_identity.json"), json.dumps(result, indent=2) + "\n")
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dataset = build_dataset(Path(tmp), args.images, args.size)
        for device in devices:
            for spec in ("identity", "bench_evaluate:create_small_conv"):
                for batch in args.batches:
                    model_s = pure_model_seconds(spec, dataset, device, batch, args.repeats)
                    wall_s, timings = evaluate_seconds(spec, dataset, device, batch, args.profile)
                    row = {
                        "device": device, "model": spec.split(":")[-1], "batch": batch, "images": args.images,
                        "size": args.size, "profile": args.profile, "evaluate_wall_s": round(wall_s, 4),
                        "pure_model_s": round(model_s, 4),
                        "overhead": round((wall_s - model_s) / model_s, 3) if model_s > 1e-3 else None,
                        "overhead_ms_per_image": round(1000 * (wall_s - model_s) / args.images, 2),
                        # evaluate's own stages (decode wait, metrics, writes) against its measured model time:
                        # robust to the model running slower inside evaluate on a loaded machine
                        "stage_overhead": round((timings["total_s"] - timings["model_s"]) / timings["model_s"], 3)
                        if timings["model_s"] > 1e-3 else None,
                        "evaluate_timings": timings,
                    }  # fmt: skip
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "evaluate_timings"}), flush=True)
    from cirbench.fileio import write_text_atomic

    machine = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    write_text_atomic(args.out, json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
