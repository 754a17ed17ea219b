"""Where the CPU time of scoring one (HR, restored) pair goes in `cirbench evaluate`: decode, conversion, filtering.

Milliseconds per 768x512 pair, one pair a call (evaluate's default batch), with the process's torch threads.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from cirbench.fileio import decode_png_rgb8, encode_png
from cirbench.metrics import create_metric
from cirbench.metrics.color import rgb_to_y_studio
from cirbench.metrics.ssim import SIGMA, WINDOW_SIZE, band_rows, filter_valid, gaussian_1d, ssim_maps


def _ms(run: Callable[[], object], repeat: int) -> float:
    run()
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(1000.0 * best, 3)


def _ssim_stages(a: torch.Tensor, b: torch.Tensor, repeat: int) -> dict[str, float]:
    """SSIM's stages run one after another on the main thread, band by band as SSIM cuts them."""
    taps = gaussian_1d(WINDOW_SIZE, SIGMA, torch.float64, a.device)
    k, rows = WINDOW_SIZE, band_rows(a.shape[0] * a.shape[1], a.shape[-1])
    starts = range(0, a.shape[-2] - k + 1, rows)
    bands = [slice(s, min(s + rows, a.shape[-2] - k + 1) + k - 1) for s in starts]
    fa, fb = a.to(torch.float64), b.to(torch.float64)
    planes = [torch.cat([fa[..., r, :], fb[..., r, :], fa[..., r, :] ** 2 + fb[..., r, :] ** 2,
                         fa[..., r, :] * fb[..., r, :]], dim=1) for r in bands]  # fmt: skip
    convert = _ms(lambda: [(a[..., r, :].to(torch.float64), b[..., r, :].to(torch.float64)) for r in bands], repeat)
    filtering = _ms(lambda: [filter_valid(p, taps) for p in planes], repeat)
    maps = _ms(lambda: [ssim_maps(fa[..., r, :], fb[..., r, :], taps) for r in bands], repeat)
    return {"convert_uint8_to_float64": convert, "filter": filtering, "maps_and_products": round(maps - filtering, 3)}


def breakdown(ref: torch.Tensor, test: torch.Tensor, repeat: int = 3) -> dict:
    """Per-pair milliseconds of every stage of scoring PSNR+SSIM on CPU, for the first pair of ref/test."""
    ref, test = ref[:1].cpu(), test[:1].cpu()
    ref8, test8 = (x.mul(255.0).round_().to(torch.uint8) for x in (ref, test))
    pngs = [encode_png(x[0].permute(1, 2, 0).numpy()) for x in (ref8, test8)]
    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    ssim_y = create_metric("ssim", channel="y")

    def pillow(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image)

    return {
        "decode_2_png_pillow": _ms(lambda: [pillow(d) for d in pngs], repeat),
        "decode_2_png_libpng": _ms(lambda: [decode_png_rgb8(d) for d in pngs], repeat),
        "quantise_output_to_uint8": _ms(lambda: test.mul(255.0).round_().to(torch.uint8), repeat),
        "float01_to_float64_grid_2_images": _ms(lambda: [torch.round(x.double() * 255.0) for x in (ref, test)], repeat),
        "rgb_to_y_studio_2_images": _ms(lambda: [rgb_to_y_studio(x.double()) for x in (ref8, test8)], repeat),
        "psnr_rgb": _ms(lambda: psnr(ref8, test8), repeat),
        "ssim_rgb": _ms(lambda: ssim(ref8, test8), repeat),
        "ssim_y": _ms(lambda: ssim_y(ref8, test8), repeat),
        "ssim_rgb_stages_one_thread_of_work": _ssim_stages(ref8, test8, repeat),
        "torch_threads": torch.get_num_threads(),
        "note": "ssim_rgb runs its bands on torch-threads Python threads; the stages are the same work run serially",
    }
