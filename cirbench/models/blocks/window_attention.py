"""HAT-style hybrid attention: shifted-window self-attention with a conv branch (HAB), overlapping
cross-attention (OCAB) and the residual group (RHAG) that chains them; feature maps are channel-last inside.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from cirbench.models.blocks.restormer import GatedDconvFeedForward

MASKED = -100.0  # added to attention logits between tokens of different shifted regions


def window_partition(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B,H,W,C] -> [B*nW, size*size, C], windows in row-major order per image."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size * size, c)


def window_merge(windows: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: [B*nW, size*size, C] -> [B,H,W,C]."""
    c = windows.shape[-1]
    x = windows.reshape(-1, h // size, w // size, size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def _grid(size: int) -> torch.Tensor:
    """[2, size*size] (row, col) coordinates of a square window, row-major."""
    axis = torch.arange(size)
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij")).flatten(1)


def self_attention_index(window: int) -> torch.Tensor:
    """[window², window²] int64 index into the (2w-1)² bias table: query coord minus key coord (Swin/HAT)."""
    grid = _grid(window)
    delta = grid[:, :, None] - grid[:, None, :] + (window - 1)
    return delta[0] * (2 * window - 1) + delta[1]


def overlap_attention_index(window: int, overlap_window: int) -> torch.Tensor:
    """[window², overlap²] int64 index into the (w+ow-1)² bias table: key coord (enlarged window) minus
    query coord (original window), shifted to start at 0 (HAT's OCA layout)."""
    delta = _grid(overlap_window)[:, None, :] - _grid(window)[:, :, None] + (window - overlap_window + 1)
    return delta[0] * (window + overlap_window - 1) + delta[1]


@lru_cache(maxsize=32)
def _shift_mask_cpu(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    regions = torch.zeros(1, h, w, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            regions[:, rows, cols, :] = label
            label += 1
    ids = window_partition(regions, window).squeeze(-1)  # nW, window²
    mask = ids[:, None, :] - ids[:, :, None]
    return torch.where(mask != 0, torch.tensor(MASKED), torch.tensor(0.0))


def shifted_window_mask(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """[nW, window², window²] additive mask for shifted windows (tokens from different regions: -100)."""
    return _shift_mask_cpu(h, w, window, shift).to(device)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention (scale head_dim**-0.5) with an additive logit bias."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))


def _split_heads(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    n, length, c = tokens.shape
    return tokens.reshape(n, length, heads, c // heads).transpose(1, 2)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside square windows with a learned relative-position bias."""

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window = window
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, windows: torch.Tensor, index: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        n, length, c = windows.shape
        q, k, v = self.qkv(windows).reshape(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[index.reshape(-1)].reshape(length, length, -1).permute(2, 0, 1)
        if mask is None:
            out = _attend(q, k, v, bias.unsqueeze(0))
        else:
            groups = mask.shape[0]
            shape = (n // groups, groups, self.heads, length, -1)
            out = _attend(q.reshape(shape), k.reshape(shape), v.reshape(shape), bias + mask.unsqueeze(1))
        return self.proj(out.reshape(n, self.heads, length, -1).transpose(1, 2).reshape(n, length, c))


class ChannelAttention(nn.Module):
    """RCAN channel attention: global pooling, squeeze, expand, sigmoid gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // squeeze, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // squeeze, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class ConvAttentionBranch(nn.Module):
    """HAT's CAB: conv 3x3 (compress), GELU, conv 3x3 (expand), channel attention (keys ``cab.0/2/3``)."""

    def __init__(self, channels: int, compress: int, squeeze: int) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(channels, channels // compress, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels // compress, channels, 3, padding=1),
            ChannelAttention(channels, squeeze),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


def _channel_first(fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a [B,C,H,W] module to a channel-last [B,H,W,C] map."""
    return fn(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class HybridAttentionBlock(nn.Module):
    """HAB: (shifted) window attention plus a scaled conv branch, then a GDFN (with bias) in place of an MLP."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        shift: int,
        compress: int,
        squeeze: int,
        expansion: float,
        conv_scale: float = 0.01,
    ) -> None:
        super().__init__()
        self.window, self.shift, self.conv_scale = window, shift, conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.conv_block = ConvAttentionBranch(dim, compress, squeeze)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = GatedDconvFeedForward(dim, expansion, bias=True)

    def forward(self, x: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        normed = self.norm1(x)
        conv = _channel_first(self.conv_block, normed)
        if self.shift:
            normed = torch.roll(normed, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(normed, self.window), index, mask if self.shift else None)
        attended = window_merge(windows, self.window, h, w)
        if self.shift:
            attended = torch.roll(attended, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + attended + conv * self.conv_scale
        return x + _channel_first(self.ffn, self.norm2(x))


class OverlapCrossAttention(nn.Module):
    """OCAB: queries from each window attend to keys/values of an enlarged, overlapping window; then a GDFN."""

    def __init__(self, dim: int, heads: int, window: int, overlap_ratio: float, expansion: float) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.overlap_window = int(window * overlap_ratio) + window
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        table = (window + self.overlap_window - 1) ** 2
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table, heads))
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = GatedDconvFeedForward(dim, expansion, bias=True)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _key_value_windows(self, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, two_c = kv.shape[:2]
        ow = self.overlap_window
        cols = F.unfold(kv, ow, stride=self.window, padding=(ow - self.window) // 2)  # B, 2C*ow*ow, nW
        cols = cols.reshape(b, 2, two_c // 2, ow * ow, -1).permute(1, 0, 4, 3, 2)
        cols = cols.reshape(2, -1, ow * ow, two_c // 2)
        return cols[0], cols[1]

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        qkv = self.qkv(self.norm1(x))
        queries = window_partition(qkv[..., :c], self.window)
        keys, values = self._key_value_windows(qkv[..., c:].permute(0, 3, 1, 2))
        bias = self.relative_position_bias_table[index.reshape(-1)]
        bias = bias.reshape(self.window**2, self.overlap_window**2, -1).permute(2, 0, 1)
        q, k, v = (_split_heads(t, self.heads) for t in (queries, keys, values))
        out = _attend(q, k, v, bias.unsqueeze(0)).transpose(1, 2).reshape(queries.shape)
        x = self.proj(window_merge(out, self.window, h, w)) + x
        return x + _channel_first(self.ffn, self.norm2(x))


class _AttentionBlocks(nn.Module):
    """The HAB chain plus the closing OCAB (keys ``blocks.N.*`` and ``overlap_attn.*``)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        depth: int,
        window: int,
        compress: int,
        squeeze: int,
        expansion: float,
        overlap_ratio: float,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            HybridAttentionBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2, compress, squeeze, expansion)
            for i in range(depth)
        )
        self.overlap_attn = OverlapCrossAttention(dim, heads, window, overlap_ratio, expansion)


class ResidualHybridAttentionGroup(nn.Module):
    """RHAG: HAB blocks, one OCAB and a 3x3 conv, with a residual around the group; [B,C,H,W] in and out.

    H and W must be multiples of the window size. The relative-position indices are passed in (a model
    owns them once, as buffers, instead of one copy per group).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        depth: int,
        window: int = 16,
        compress: int = 3,
        squeeze: int = 16,
        expansion: float = 2.66,
        overlap_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        self.window = window
        self.residual_group = _AttentionBlocks(dim, heads, depth, window, compress, squeeze, expansion, overlap_ratio)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor, self_index: torch.Tensor, overlap_index: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        mask = shifted_window_mask(h, w, self.window, self.window // 2, x.device)
        tokens = x.permute(0, 2, 3, 1)
        for block in self.residual_group.blocks:
            tokens = block(tokens, self_index, mask)
        tokens = self.residual_group.overlap_attn(tokens, overlap_index)
        return self.conv(tokens.permute(0, 3, 1, 2)) + x
