"""Colour correction of a restored image against its LQ input: AdaIN (SeeSR's default) and wavelet (low frequencies
of the LQ, high frequencies of the output), on float images in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

METHODS = ("adain", "wavelet", "none")


def _mean_std(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.reshape(*x.shape[:2], -1)
    return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]


def adain(output: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and (unbiased, +1e-5 variance) std of ``output`` moved to those of ``lq``."""
    mean_o, std_o = _mean_std(output)
    mean_l, std_l = _mean_std(lq)
    return (output - mean_o) / std_o * std_l + mean_l


def _blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=x.dtype, device=x.device) / 16
    kernel = kernel[None, None].repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(F.pad(x, (radius,) * 4, mode="replicate"), kernel, groups=x.shape[1], dilation=radius)


def _split(x: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    high = torch.zeros_like(x)
    for i in range(levels):
        low = _blur(x, 2**i)
        high, x = high + (x - low), low
    return high, x


def wavelet(output: torch.Tensor, lq: torch.Tensor) -> torch.Tensor:
    """Five dilated-blur levels (radius 1..16, replicate padding): output's high band + LQ's low band."""
    return _split(output)[0] + _split(lq)[1]


def colour_fix(output: torch.Tensor, lq: torch.Tensor, method: str) -> torch.Tensor:
    if method == "adain":
        return adain(output, lq).clamp(0, 1)
    if method == "wavelet":
        return wavelet(output, lq).clamp(0, 1)
    return output.clamp(0, 1)
