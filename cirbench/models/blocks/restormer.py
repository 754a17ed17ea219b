"""Restormer building blocks: channel LayerNorm, MDTA attention, GDFN feed-forward, transformer block, resampling.

Parameter names follow the Restormer family (``norm1.body.weight``, ``attn.qkv_dwconv``, ``ffn.project_in``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-5


class _LastDimNorm(nn.Module):
    """LayerNorm over the last dimension; without bias it only rescales (no mean subtraction)."""

    def __init__(self, dim: int, with_bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.with_bias = with_bias
        if with_bias:
            self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_bias:
            return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, LAYER_NORM_EPS)
        variance = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(variance + LAYER_NORM_EPS) * self.weight


class ChannelLayerNorm(nn.Module):
    """LayerNorm across channels of a [B,C,H,W] map (Restormer 'WithBias' or 'BiasFree')."""

    def __init__(self, dim: int, with_bias: bool = True) -> None:
        super().__init__()
        self.body = _LastDimNorm(dim, with_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GatedDconvFeedForward(nn.Module):
    """GDFN: 1x1 expand to two branches, 3x3 depthwise conv, GELU gate, 1x1 project back."""

    def __init__(self, dim: int, expansion: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransposedAttention(nn.Module):
    """MDTA: multi-head attention across channels (C x C maps) with a learned per-head temperature."""

    def __init__(self, dim: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class RestormerBlock(nn.Module):
    """Restormer transformer block: x + MDTA(norm(x)), then x + GDFN(norm(x))."""

    def __init__(self, dim: int, heads: int, expansion: float, bias: bool, norm_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim, norm_bias)
        self.attn = TransposedAttention(dim, heads, bias)
        self.norm2 = ChannelLayerNorm(dim, norm_bias)
        self.ffn = GatedDconvFeedForward(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def restormer_stage(dim: int, heads: int, depth: int, expansion: float, bias: bool) -> nn.Sequential:
    """``depth`` Restormer blocks in a row (keys ``<stage>.<i>.*``)."""
    return nn.Sequential(*[RestormerBlock(dim, heads, expansion, bias) for _ in range(depth)])


class Downsample(nn.Module):
    """3x3 conv halving the channels, then PixelUnshuffle(2): C x H x W -> 2C x H/2 x W/2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """3x3 conv doubling the channels, then PixelShuffle(2): C x H x W -> C/2 x 2H x 2W."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ConvEmbed(nn.Module):
    """3x3 convolutional patch embedding (key ``proj``)."""

    def __init__(self, in_channels: int, dim: int, bias: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
