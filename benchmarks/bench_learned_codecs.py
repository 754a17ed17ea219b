"""Encode and decode seconds per megapixel of the learned codecs (Cheng2020 anchor/attn, HiFiC, tiny fixture).

Uses the canonical weights when they are in the torch-hub cache, else seeded random weights of the same
architecture (same compute; entropy-coding time can differ). Writes benchmarks/results/bench_learned_codecs.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cirbench.codecs import create_codec
from cirbench.errors import CodecUnavailable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_KODAK = REPO.parent / "shared" / "data" / "kodak"
TINY = REPO / "tests" / "fixtures" / "tiny-factorized-cirbench.pth.tar"


def seeded_cheng(variant: str, folder: Path) -> str:
    from compressai.zoo import cheng2020_anchor, cheng2020_attn

    torch.manual_seed(0)
    net = (cheng2020_anchor if variant == "cheng2020-anchor" else cheng2020_attn)(quality=1).eval()
    net.update(force=True)
    path = folder / f"{variant}-seeded-random.pth.tar"
    torch.save(net.state_dict(), path)
    return str(path)


def seeded_hific(folder: Path) -> str:
    from cirbench.codecs._hific_model import HificNetwork

    torch.manual_seed(0)
    net = HificNetwork()
    density, widths = net.Hyperprior.hyperlatent_likelihood, (1, 3, 3, 3, 1)
    with torch.no_grad():
        for k in range(4):
            getattr(density, f"H_{k}").fill_(math.log(math.expm1(1 / 10 ** 0.25 / widths[k + 1])))
            getattr(density, f"b_{k}").uniform_(-0.5, 0.5)
    path = folder / "hific-seeded-random.pt"
    torch.save(net.state_dict(), path)
    return str(path)


def configurations(folder: Path, device: str) -> list[tuple[str, str, dict]]:
    """(label, codec, options); canonical weights when cached, else a seeded random stand-in."""
    os.environ.setdefault("CIRBENCH_OFFLINE", "1")  # never download inside a benchmark
    configs = []
    for variant in ("cheng2020-anchor", "cheng2020-attn"):
        options = {"model": variant, "metric": "mse", "quality": 1, "device": device}
        try:
            create_codec("compressai", **options).check_available()
            configs.append((f"{variant} q1 (zoo weights)", "compressai", options))
        except CodecUnavailable:
            configs.append((f"{variant} q1 (seeded random weights)", "compressai", options | {"checkpoint": seeded_cheng(variant, folder)}))
    try:
        create_codec("hific", level="low", device=device).check_available()
        configs.append(("hific low (hific_low.pt)", "hific", {"level": "low", "device": device}))
    except CodecUnavailable:
        configs.append(("hific low (seeded random weights)", "hific", {"level": "low", "device": device, "checkpoint": seeded_hific(folder)}))
    tiny = {"model": "bmshj2018-factorized", "quality": 1, "checkpoint": str(TINY), "device": device}
    configs.append(("tiny-factorized-cirbench (test fixture)", "compressai", tiny))
    return configs


def measure(codec_name: str, options: dict, images: list[np.ndarray]) -> dict:
    codec = create_codec(codec_name, **options)
    start = time.perf_counter()
    codec.roundtrip(images[0][:128, :128].copy())  # loads the model and tables; not timed below
    load_seconds = time.perf_counter() - start
    encode = decode = megapixels = 0.0
    bits = 0
    for rgb in images:
        result = codec.roundtrip(rgb)
        encode += result.encode_seconds
        decode += result.decode_seconds
        megapixels += rgb.shape[0] * rgb.shape[1] / 1e6
        bits += 8 * len(result.bitstream)
    return {
        "encode_s_per_mp": round(encode / megapixels, 3),
        "decode_s_per_mp": round(decode / megapixels, 3),
        "first_call_s": round(load_seconds, 2),
        "mean_bpp": round(bits / (megapixels * 1e6), 4),
        "megapixels": round(megapixels, 4),
    }


def measure_stock_loops(options: dict, images: list[np.ndarray]) -> dict:
    """The same Cheng2020 codec with CompressAI's unmodified autoregressive loops (for the speed-up figure)."""
    from cirbench.codecs._compressai_ar import accelerate

    codec = create_codec("compressai", **options)
    network = codec.network()
    del network._compress_ar, network._decompress_ar  # back to the class methods of CompressAI
    try:
        return measure("compressai", options, images)
    finally:
        accelerate(network)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kodak", type=Path, default=DEFAULT_KODAK)
    parser.add_argument("--images", type=int, default=2, help="first N Kodak images (768x512 each)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where available")
    parser.add_argument("--skip-stock", action="store_true", help="do not time CompressAI's unmodified loops")
    parser.add_argument("--crop", type=int, default=0, help="use the top-left NxN of each image (0: whole image)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_learned_codecs.json")
    args = parser.parse_args()
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.kodak.glob("*.png"))[: args.images]]
    if args.crop:
        images = [np.ascontiguousarray(rgb[: args.crop, : args.crop]) for rgb in images]
    results = {}
    with tempfile.TemporaryDirectory(prefix="cirbench-learned-") as folder:
        for label, codec_name, options in configurations(Path(folder), args.device):
            shown = {k: v for k, v in options.items() if k != "checkpoint"}
            results[label] = {"codec": codec_name, "options": shown} | measure(codec_name, options, images)
            print(f"{label}: {json.dumps(results[label])}", flush=True)
            if codec_name == "compressai" and options["model"] == "cheng2020-anchor" and not args.skip_stock:
                stock = f"{label}, stock CompressAI loops"
                results[stock] = {"codec": codec_name, "options": shown} | measure_stock_loops(options, images)
                print(f"{stock}: {json.dumps(results[stock])}", flush=True)
    record = {
        "benchmark": "bench_learned_codecs",
        "images": f"first {len(images)} Kodak images" + (f", top-left {args.crop} px" if args.crop else ""),
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "note": "autoregressive loops of Cheng2020 run single-threaded by design; load average not controlled",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from cirbench.fileio import write_text_atomic

    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
