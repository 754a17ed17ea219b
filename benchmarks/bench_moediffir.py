"""Benchmark of MoE-DiffIR inference: seconds per 256x256 image and peak GPU memory, both variants.

On CUDA: the official configuration (1.3 B parameters, seeded random weights: the released files cannot be
downloaded here), fp32 and fp16, DDPM 200 steps and the DDIM extension at 50 and 20. On CPU (or --smoke): the tiny
configuration at 64x64, said so in the JSON (``--official`` on a CPU: one DDIM step of the full network, a shape
check). Writes bench_moediffir.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from cirbench.diffusion.samplers import SamplerSettings
from cirbench.fileio import write_text_atomic
from cirbench.models.moediffir.moediffir_models import build_networks
from cirbench.models.moediffir.network import official_config, tiny_config
from cirbench.models.moediffir.pipeline import InferenceSettings, MoEDiffIRPipeline


def build(variant: str, official: bool, device: str) -> tuple[MoEDiffIRPipeline, int]:
    cfg = (official_config if official else tiny_config)(variant)
    net, vae, context, _ = build_networks(cfg, None, None, 0, device)  # seeded random weights, made on the device
    params = sum(p.numel() for p in net.parameters()) + sum(p.numel() for p in vae.parameters())
    return MoEDiffIRPipeline(net, vae, InferenceSettings(), context), params


def measure(pipeline: MoEDiffIRPipeline, size: int, method: str, steps: int, precision: str, repeats: int) -> dict:
    device = next(pipeline.net.parameters()).device
    pipeline.settings = InferenceSettings(SamplerSettings(method=method, steps=steps), precision=precision)
    lq = torch.rand(1, 3, size, size, device=device)
    pipeline.restore(lq, [0])  # warm-up (kernels, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        pipeline.restore(lq, [0])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    row = {"sampler": method, "steps": steps, "precision": precision, "seconds_per_image": round(seconds, 4),
           "seconds_per_step": round(seconds / steps, 5)}  # fmt: skip
    if device.type == "cuda":
        row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny configuration on CPU, 4 steps")
    parser.add_argument("--official", action="store_true", help="the official configuration on any device (CPU: 1 DDIM step)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_moediffir.json"))
    args = parser.parse_args(argv)
    device = "cpu" if args.smoke else args.device
    cuda = device.startswith("cuda")
    official = cuda or args.official
    size = 256 if official else 64
    if cuda:
        plans = [("ddpm", 200, "fp32"), ("ddpm", 200, "fp16"), ("ddim", 50, "fp16"), ("ddim", 20, "fp16")]
    elif official:
        plans = [("ddim", 1, "fp32")]  # a shape check of the full network on a CPU, not a speed figure
    else:
        plans = [("ddpm", 4 if args.smoke else 50, "fp32"), ("ddim", 4 if args.smoke else 20, "fp32")]
    results = []
    for variant in ("daclip", "prompt"):
        pipeline, params = build(variant, official, device)
        for method, steps, precision in plans:
            row = {"variant": variant, "parameters": params, **measure(pipeline, size, method, steps, precision, args.repeats)}
            print(json.dumps(row))
            results.append(row)
        del pipeline
        if cuda:
            torch.cuda.empty_cache()
    report = {
        "benchmark": "bench_moediffir",
        "configuration": "official (random weights)" if official else "tiny (CPU: not the official configuration)",
        "image_size": size,
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": results,
    }
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
