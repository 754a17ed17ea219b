"""Benchmark of SSP-IR: seconds per 512x512 image (DDPM 50 steps) and peak GPU memory, fp16 and fp32, with and
without the guidance skip; one training step's time and memory at batch 1 and 16.

On CUDA: the official networks (1.86 B parameters with SD-1.5's VAE and text encoder and CLIP-L/14, seeded random
weights: no SSP-IR weights exist). On CPU (or --smoke): the tiny configuration at 64x64, said so in the JSON.
Writes bench_sspir.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from cirbench.fileio import write_text_atomic
from cirbench.models.sspir import sspir_towers as towers
from cirbench.models.sspir.sspir_checkpoint import SSPIRNetworks
from cirbench.models.sspir.sspir_controlnet import SSPIRControlNet
from cirbench.models.sspir.sspir_pipeline import SSPIRPipeline, SSPIRSettings
from cirbench.models.sspir.sspir_tiny import tiny_parts, tiny_tokenizer
from cirbench.models.sspir.sspir_unet import SSPIRUNet
from cirbench.models.sspir.tpbnet import TPBNet


def build(official: bool, device: str) -> SSPIRPipeline:
    if not official:
        nets, parts, vision = tiny_parts(0)
        return SSPIRPipeline(nets, parts, vision, SSPIRSettings())
    torch.manual_seed(0)
    with torch.device(device):
        unet = SSPIRUNet()
        nets = SSPIRNetworks(unet, SSPIRControlNet.from_unet(unet), TPBNet(), {"checkpoint": None})
        parts = {"vae": towers.make_vae().eval(), "text_encoder": towers.make_text_encoder().eval(),
                 "tokenizer": tiny_tokenizer(), "scheduler": towers.SD15_SCHEDULER, "scaling_factor": towers.SCALING}  # fmt: skip
        vision = towers.make_vision_tower().eval()
    return SSPIRPipeline(nets, parts, vision, SSPIRSettings())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(device: torch.device) -> dict:
    return {"peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)} if device.type == "cuda" else {}


def infer(pipeline: SSPIRPipeline, size: int, steps: int, precision: str, skip: bool, device: str) -> dict:
    pipeline.settings = replace(pipeline.settings, steps=steps, precision=precision,
                                negative_prompt="" if skip else "dotted, noise, blur, lowres, smooth")  # fmt: skip
    pipeline.to(device)
    dev = torch.device(device)
    lq = torch.rand(1, 3, size, size, device=dev)
    pipeline(lq, [""])  # warm-up
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    pipeline(lq, [""])
    _sync(dev)
    seconds = time.perf_counter() - start
    return {"kind": "inference", "precision": precision, "steps": steps, "guidance_skip": skip,
            "seconds_per_image": round(seconds, 3), **_peak(dev)}  # fmt: skip


def train_step(pipeline: SSPIRPipeline, size: int, batch: int, device: str) -> dict:
    from cirbench.models.sspir.sspir_training import SSPIRTrainer
    from cirbench.training.config import TrainConfig

    pipeline.settings = replace(pipeline.settings, precision="fp32")
    pipeline.to(device)
    trainer = SSPIRTrainer.__new__(SSPIRTrainer)  # the step without a dataset: random batches of the right shape
    config = TrainConfig(batch_size=batch, crop_size=size, lr=5e-5, weight_decay=1e-2, grad_clip=1.0)
    trainer.setup_optimisation(pipeline, config, device, 1)
    dev = torch.device(device)
    trainer.batch = lambda step, micro: (torch.rand(batch, 3, size, size, device=dev),
                                         torch.rand(batch, 3, size, size, device=dev), [""] * batch)  # fmt: skip
    try:
        trainer.step(0)
        _sync(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer.step(1)
        _sync(dev)
        row = {"seconds_per_step": round(time.perf_counter() - start, 3), **_peak(dev)}
    except torch.OutOfMemoryError:
        row = {"error": "out of GPU memory"}
    finally:
        del trainer
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return {"kind": "train_step", "batch": batch, "precision": "fp16 mixed" if dev.type == "cuda" else "fp32", **row}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny configuration on CPU, 2 steps")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_sspir.json"))
    args = parser.parse_args(argv)
    device = "cpu" if args.smoke else args.device
    official = device.startswith("cuda")
    size, steps = (512, 50) if official else (64, 2 if args.smoke else 50)
    pipeline = build(official, device)
    rows = []
    plans = [("fp16", True), ("fp16", False), ("fp32", True), ("fp32", False)] if official else [("fp32", True), ("fp32", False)]
    for precision, skip in plans:
        rows.append(infer(pipeline, size, steps, precision, skip, device))
        print(json.dumps(rows[-1]), flush=True)
    for batch in (1, 16) if official else (1, 2):
        rows.append(train_step(pipeline, size, batch, device))
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "benchmark": "bench_sspir",
        "configuration": "official (seeded random weights)" if official else "tiny (CPU: not the official configuration)",
        "image_size": size,
        "parameters": sum(p.numel() for m in pipeline.modules() for p in m.parameters()),
        "device": torch.cuda.get_device_name(0) if official else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "results": rows,
    }
    write_text_atomic(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
