"""Benchmark of cirbench metrics: pairs/second per metric and all together, against torchmetrics, pyiqa and lpips.

Kodak 768x512 pairs (JPEG q10 decodes); CPU, and CUDA when present (or --device). Also where the time of a CPU
evaluation goes (PNG decode, colour conversion, SSIM filtering), DISTS and NIQE throughput, FID state memory.
Writes benchmarks/results/bench_metrics.json. Targets: PSNR+SSIM >= 4x torchmetrics on CPU; FID state flat in N.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

from cirbench.fileio import write_text_atomic
from cirbench.metrics import create_metric
from cirbench.metrics._stats import RunningMoments

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_metrics_breakdown beside this file
KODAK = REPO.parent / "shared" / "data" / "kodak"


def kodak_pairs(count: int, quality: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """[N,3,512,768] references (portraits rotated) and their JPEG-decoded versions, in [0,1]."""
    refs, tests = [], []
    for path in sorted(KODAK.glob("kodim*.png"))[:count]:
        image = Image.open(path).convert("RGB")
        if image.height > image.width:
            image = image.transpose(Image.Transpose.ROTATE_90)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        decoded = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        for store, img in ((refs, image), (tests, decoded)):
            store.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0)
    return torch.stack(refs), torch.stack(tests)


def best_seconds(run: Callable[[], object], repeat: int, device: str) -> float:
    """Minimum wall time over ``repeat`` runs (after one warm-up), synchronising CUDA."""
    run()
    return min(_once(run, device) for _ in range(max(1, repeat)))


def interleaved_best_seconds(runs: dict[str, Callable[[], object]], repeat: int, device: str) -> dict[str, float]:
    """Best wall time of each run, the runs taking turns so that load from other processes hits all alike."""
    best = {name: best_seconds(run, 1, device) for name, run in runs.items()}  # includes one warm-up each
    for _ in range(repeat - 1):
        for name, run in runs.items():
            best[name] = min(best[name], _once(run, device))
    return best


def _once(run: Callable[[], object], device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def batched(fn: Callable[[torch.Tensor, torch.Tensor], object], ref, test, batch: int) -> Callable[[], list]:
    return lambda: [fn(ref[i : i + batch], test[i : i + batch]) for i in range(0, ref.shape[0], batch)]


def bench_classic(ref: torch.Tensor, test: torch.Tensor, device: str, batch: int, repeat: int) -> dict:
    """PSNR and SSIM: ours (float64, valid, separable) vs torchmetrics functional (input dtype float32)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    psnr, ssim = create_metric("psnr", device=device), create_metric("ssim", device=device)

    def tm_psnr(a, b):
        return peak_signal_noise_ratio(a, b, data_range=1.0, dim=(1, 2, 3), reduction="none")

    def tm_ssim(a, b):
        return structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")

    def both(first, second):
        return lambda a, b: (first(a, b), second(a, b))

    def grid8(x):
        return x.mul(255.0).round_().to(torch.uint8)

    ref8, test8 = grid8(ref), grid8(test)
    pairs = ref.shape[0]
    runs = {
        "cirbench_psnr": psnr,
        "cirbench_ssim": ssim,
        "cirbench_psnr_ssim": both(psnr, ssim),
        "torchmetrics_psnr": tm_psnr,
        "torchmetrics_ssim": tm_ssim,
        "torchmetrics_psnr_ssim": both(tm_psnr, tm_ssim),
    }
    timed = {name: batched(fn, ref, test, batch) for name, fn in runs.items()}
    timed["cirbench_psnr_ssim_uint8_input"] = batched(both(psnr, ssim), ref8, test8, batch)  # what evaluate passes
    seconds = interleaved_best_seconds(timed, repeat, device)
    rates = {name: pairs / value for name, value in seconds.items()}
    ours_psnr, ours_ssim = psnr(ref, test).cpu(), ssim(ref, test).cpu()
    result = {f"{name}_pairs_per_s": round(rate, 3) for name, rate in rates.items()}
    result["speedup_psnr_ssim_vs_torchmetrics"] = round(
        rates["cirbench_psnr_ssim"] / rates["torchmetrics_psnr_ssim"], 3
    )
    result["max_abs_diff_psnr_db_vs_torchmetrics"] = float((ours_psnr - tm_psnr(ref, test).double().cpu()).abs().max())
    result["max_abs_diff_ssim_vs_torchmetrics"] = float((ours_ssim - tm_ssim(ref, test).double().cpu()).abs().max())
    result["max_abs_diff_ssim_vs_skimage"] = _skimage_gap(ref, test, ours_ssim)
    result.update(
        _float64_torchmetrics(ref[:2].double(), test[:2].double(), both(psnr, ssim), both(tm_psnr, tm_ssim), device)
    )
    return result


def _float64_torchmetrics(ref, test, ours, theirs, device: str) -> dict:
    """Precision-matched comparison: torchmetrics given float64 input (what 1e-7 SSIM agreement needs)."""
    ours_rate = ref.shape[0] / best_seconds(lambda: ours(ref, test), 1, device)
    theirs_rate = ref.shape[0] / best_seconds(lambda: theirs(ref, test), 1, device)
    return {
        "torchmetrics_float64_psnr_ssim_pairs_per_s": round(theirs_rate, 3),
        "speedup_psnr_ssim_vs_torchmetrics_float64": round(ours_rate / theirs_rate, 3),
    }


def _skimage_gap(ref: torch.Tensor, test: torch.Tensor, ours: torch.Tensor) -> float:
    from skimage.metrics import structural_similarity

    gaps = []
    for index in range(min(2, ref.shape[0])):
        a = np.round(ref[index].permute(1, 2, 0).double().cpu().numpy() * 255)
        b = np.round(test[index].permute(1, 2, 0).double().cpu().numpy() * 255)
        value = structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2
        )
        gaps.append(abs(value - float(ours[index])))
    return max(gaps)


def bench_lpips(ref: torch.Tensor, test: torch.Tensor, device: str, batch: int, repeat: int) -> dict:
    """LPIPS-alex: ours vs lpips.LPIPS called directly, same seeded backbone (throughput is weight-independent)."""
    import lpips
    import torchvision

    torch.manual_seed(0)
    backbone = torchvision.models.alexnet(weights=None).state_dict()
    ours = create_metric("lpips", device=device, weights=backbone)
    reference = ours.model  # the same lpips.LPIPS module, called the way lpips users do
    assert isinstance(reference, lpips.LPIPS)

    def direct(a, b):
        with torch.no_grad():
            return reference(a * 2 - 1, b * 2 - 1)

    pairs = ref.shape[0]
    return {
        "cirbench_lpips_pairs_per_s": round(pairs / best_seconds(batched(ours, ref, test, batch), repeat, device), 3),
        "lpips_package_pairs_per_s": round(pairs / best_seconds(batched(direct, ref, test, batch), repeat, device), 3),
        "max_abs_diff_vs_lpips_package": float(
            (ours(ref, test).cpu() - direct(ref, test).reshape(-1).double().cpu()).abs().max()
        ),
        "note": "seeded random AlexNet backbone: real weights cannot be downloaded here; speed does not depend on values",
    }


def bench_fid(ref: torch.Tensor, test: torch.Tensor, device: str, batch: int) -> dict:
    """Whole-image FID and patch FID/256 feature throughput (Inception on 2 x N images) with random weights."""
    from cirbench.metrics._inception import fid_inception_architecture

    torch.manual_seed(0)
    state = fid_inception_architecture("cpu").state_dict()
    result = {}
    for name, options in (("fid", {}), ("patch_fid", {})):
        metric = create_metric(name, device=device, weights=state, batch_size=batch, **options)
        start = time.perf_counter()
        for i in range(0, ref.shape[0], batch):
            metric.update(ref[i : i + batch].to(device), test[i : i + batch].to(device))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = metric.compute()
        result[f"cirbench_{name}_pairs_per_s"] = round(ref.shape[0] / (time.perf_counter() - start), 3)
        result[f"cirbench_{name}_n_ref"] = value["n_ref"]
    return result


def bench_fid_memory(sizes: tuple[int, ...] = (2048, 8192, 32768), chunk: int = 512) -> dict:
    """FID state bytes and process RSS growth while streaming N random 2048-d features (flat in N)."""
    process = psutil.Process()
    rows = []
    for count in sizes:
        moments = RunningMoments()
        before = process.memory_info().rss
        generator = torch.Generator().manual_seed(count)
        for _ in range(count // chunk):
            moments.update(torch.randn(chunk, 2048, generator=generator))
        state = sum(t.numel() * t.element_size() for t in (moments.shift, moments.total, moments.outer))
        rows.append(
            {
                "n": count,
                "state_bytes": state,
                "rss_growth_bytes": process.memory_info().rss - before,
                "all_features_bytes_if_stored": count * 2048 * 8,
            }
        )
    return {"per_n": rows, "state_flat": len({row["state_bytes"] for row in rows}) == 1}


def bench_pyiqa(ref: torch.Tensor, test: torch.Tensor, device: str, pairs: int = 2) -> dict:
    """pyiqa 0.1.16's own PSNR and SSIM (create_metric, RGB as its defaults) on the first pairs, one pair a call."""
    try:
        import pyiqa
    except ImportError:
        return {"skipped": "pyiqa is not installed (pip install 'cirbench[iqa]')"}
    ref, test = ref[:pairs], test[:pairs]
    rates = {}
    for name in ("psnr", "ssim"):
        metric = pyiqa.create_metric(name, device=device, test_y_channel=False)
        call = batched(lambda a, b, m=metric: m(b, a), ref, test, 1)
        rates[name] = pairs / best_seconds(call, 1, device)
    return {
        "version": pyiqa.__version__,
        "pairs": pairs,
        "pyiqa_psnr_pairs_per_s": round(rates["psnr"], 3),
        "pyiqa_ssim_pairs_per_s": round(rates["ssim"], 3),
        "pyiqa_psnr_ssim_pairs_per_s": round(1.0 / (1.0 / rates["psnr"] + 1.0 / rates["ssim"]), 3),
    }


def bench_perceptual(ref: torch.Tensor, test: torch.Tensor, device: str, batch: int) -> dict:
    """DISTS (seeded random VGG16 and alpha/beta: speed does not depend on values) and NIQE float32/float64."""
    import torchvision

    from cirbench.metrics import MetricError
    from cirbench.metrics.dists import CHANNELS
    from cirbench.weights.manager import WeightsUnavailable

    torch.manual_seed(0)
    mixing = {key: torch.rand(1, sum(CHANNELS), 1, 1) for key in ("alpha", "beta")}
    dists = create_metric("dists", device=device, weights=torchvision.models.vgg16().state_dict(), alpha_beta=mixing)
    pairs = ref.shape[0]
    result = {"dists_pairs_per_s": round(pairs / best_seconds(batched(dists, ref, test, batch), 1, device), 3)}
    for precision in ("float32", "float64"):
        try:
            niqe = create_metric("niqe", device=device, precision=precision)
        except (WeightsUnavailable, MetricError) as exc:
            result[f"niqe_{precision}"] = f"skipped: {exc}"
            continue
        call = batched(lambda a, b, m=niqe: m.score(b), ref, test, batch)
        result[f"niqe_{precision}_images_per_s"] = round(pairs / best_seconds(call, 1, device), 3)
    result["note"] = "NIQE float32 is BasicSR's arithmetic (numpy, per image); float64 runs batched on the device"
    return result


def run(device: str, pairs: int, batch: int, repeat: int, deep: bool) -> dict:
    ref, test = kodak_pairs(pairs)
    ref, test = ref.to(device), test.to(device)
    result = {
        "device": device,
        "pairs": pairs,
        "image_size": list(ref.shape[-2:]),
        "batch": batch,
        "classic": bench_classic(ref, test, device, batch, repeat),
    }
    if device == "cpu":
        from bench_metrics_breakdown import breakdown

        result["cpu_time_per_pair_ms"] = breakdown(ref, test, repeat)
    if deep:
        result["pyiqa"] = bench_pyiqa(ref, test, device)
        result["perceptual"] = bench_perceptual(ref, test, device, batch)
        result["lpips"] = bench_lpips(ref, test, device, batch, repeat)
        result["fid"] = bench_fid(ref, test, device, batch)
        total = sum(
            1.0 / result[key][f"cirbench_{name}_pairs_per_s"]
            for key, name in (("classic", "psnr_ssim"), ("lpips", "lpips"), ("fid", "patch_fid"))
        )
        result["cirbench_all_profile_metrics_pairs_per_s"] = round(1.0 / total, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-deep", action="store_true", help="skip pyiqa, DISTS, NIQE, LPIPS and FID (slow on a small CPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CPU, and CUDA if present")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_metrics.json")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "auto" else [args.device]
    report = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": psutil.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "runs": [run(device, args.pairs, args.batch, args.repeat, not args.no_deep) for device in devices],
        "fid_memory": bench_fid_memory(),
    }
    write_text_atomic(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
