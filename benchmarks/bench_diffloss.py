"""Benchmark of DiffLoss training: step time and peak memory of promptcir-s with l1 against diffloss.

On CUDA: the real 552 M ADM prior (random weights of the official configuration), fp32 and bf16/fp16 autocast,
batch 4 at 256x256. On CPU (or --smoke): a tiny ADM prior at 64x64, said so in the JSON. Writes bench_diffloss.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from cirbench.diffusion.adm import TINY_ADM, ADMConfig, ADMUNet
from cirbench.fileio import write_text_atomic
from cirbench.models import load_model
from cirbench.training.losses import resolve_loss
from cirbench.training.losses.diffloss import DiffLoss


def _loss(kind: str, device: str, official: bool, dtype: str):
    if kind == "l1":
        return resolve_loss("l1")
    with torch.device(device):
        prior = ADMUNet(ADMConfig() if official else TINY_ADM)
    return DiffLoss(prior, dtype=dtype).to(device)


def measure(kind: str, device: str, official: bool, dtype: str, batch: int, size: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = load_model("promptcir-s", init="random", device=device)
    network = model.network.to(device).train()
    loss_fn = _loss(kind, device, official, dtype)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    lq, hr = torch.rand(batch, 3, size, size, device=device), torch.rand(batch, 3, size, size, device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 1):  # the first step warms up
        if hasattr(loss_fn, "set_step"):
            loss_fn.set_step(step)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(network(lq).float(), hr)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"loss": kind, "dtype": dtype if kind == "diffloss" else "float32", "seconds_per_step": round(min(times[1:]), 4),
            "peak_cuda_mib": None if peak is None else round(peak, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny prior, 32 px, 1 step (on CPU)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_diffloss.json")
    args = parser.parse_args()
    if args.smoke:
        args.device = "cpu"
    cuda = args.device.startswith("cuda")
    official, batch, size = (True, 4, 256) if cuda else (False, 2, 32 if args.smoke else 64)
    steps = 1 if args.smoke else args.steps
    dtypes = ["float32", "bfloat16" if cuda and torch.cuda.is_bf16_supported() else "float16"] if cuda else ["float32"]
    runs = [measure("l1", args.device, official, "float32", batch, size, steps)]
    runs += [measure("diffloss", args.device, official, dtype, batch, size, steps) for dtype in dtypes]
    result = {
        "benchmark": "promptcir-s training step: l1 vs diffloss",
        "prior": "official ADM 256x256 configuration (552,814,086 parameters, random weights)" if official
        else "tiny ADM configuration (CPU stand-in; the real prior needs a GPU)",
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "batch": batch, "size": size, "runs": runs, "torch": torch.__version__,
    }  # fmt: skip
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
