"""The ADM pixel-space diffusion U-Net (Dhariwal & Nichol 2021), written for cirbench with the original key names.

`forward(x, t)` returns the ε/σ output and the middle-block ("h-space") activation, as DiffLoss needs; the
official configuration loads OpenAI's 256x256_diffusion_uncond.pt strictly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as grad_checkpoint


@dataclass(frozen=True)
class ADMConfig:
    """Hyperparameters; the defaults are those of 256x256_diffusion_uncond.pt (552,814,086 parameters)."""

    image_size: int = 256
    in_channels: int = 3
    model_channels: int = 256
    out_channels: int = 6  # ε and the learned-σ interpolation
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_head_channels: int = 64
    groups: int = 32

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def attention_downsamples(self) -> set[int]:
        return {self.image_size // r for r in self.attention_resolutions}


TINY_ADM = ADMConfig(image_size=32, model_channels=32, num_res_blocks=1, attention_resolutions=(16,),
                     channel_mult=(1, 2), num_head_channels=16)  # fmt: skip


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos | sin] of the (float) timesteps, [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype (as ADM does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class ResBlock(nn.Module):
    """Residual block with scale-shift timestep conditioning; optionally halves or doubles the resolution."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, groups: int, resample: str = "") -> None:
        super().__init__()
        self.resample = resample
        self.in_layers = nn.Sequential(GroupNorm32(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(groups, out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if channels == out_channels else nn.Conv2d(channels, out_channels, 1)

    def _resampled(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm_act, conv = self.in_layers[:-1], self.in_layers[-1]
        h = conv(self._resampled(norm_act(x)))
        x = self._resampled(x)
        scale, shift = self.emb_layers(emb).to(h.dtype)[..., None, None].chunk(2, dim=1)
        out_norm, rest = self.out_layers[0], self.out_layers[1:]
        h = rest(out_norm(h) * (1 + scale) + shift)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention, heads of ``head_channels``, ADM's legacy q/k/v layout (split after the heads)."""

    def __init__(self, channels: int, head_channels: int, groups: int) -> None:
        super().__init__()
        self.heads = channels // head_channels
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat)).reshape(b * self.heads, 3 * c // self.heads, -1)
        q, k, v = qkv.chunk(3, dim=1)
        scale = 1.0 / math.sqrt(math.sqrt(q.shape[1]))
        weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale).float(), dim=-1).to(q.dtype)
        attended = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, -1)
        return (flat + self.proj_out(attended)).reshape(b, c, *spatial)


class _Stage(nn.Sequential):
    """One entry of input_blocks / output_blocks: layers applied in order, the ResBlocks given the embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock | AttentionBlock) else layer(x)
        return x


class ADMUNet(nn.Module):
    """ADM U-Net: forward(x in [-1,1], t) -> (output [B,out,H,W], middle-block activation [B,C,H/2^k,W/2^k])."""

    def __init__(self, config: ADMConfig = ADMConfig(), gradient_checkpointing: bool = False) -> None:
        super().__init__()
        self.config, self.gradient_checkpointing = config, gradient_checkpointing
        mc, g, emb = config.model_channels, config.groups, 4 * config.model_channels
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input_blocks = nn.ModuleList([_Stage(nn.Conv2d(config.in_channels, mc, 3, padding=1))])
        skips, ch, ds = [mc], mc, 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb, mult * mc, g)]
                ch = mult * mc
                if ds in config.attention_downsamples:
                    layers.append(AttentionBlock(ch, config.num_head_channels, g))
                self.input_blocks.append(_Stage(*layers))
                skips.append(ch)
            if level != len(config.channel_mult) - 1:
                self.input_blocks.append(_Stage(ResBlock(ch, emb, ch, g, resample="down")))
                skips.append(ch)
                ds *= 2
        self.middle_block = _Stage(
            ResBlock(ch, emb, ch, g), AttentionBlock(ch, config.num_head_channels, g), ResBlock(ch, emb, ch, g)
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for index in range(config.num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), emb, mc * mult, g)]
                ch = mc * mult
                if ds in config.attention_downsamples:
                    layers.append(AttentionBlock(ch, config.num_head_channels, g))
                if level and index == config.num_res_blocks:
                    layers.append(ResBlock(ch, emb, ch, g, resample="up"))
                    ds //= 2
                self.output_blocks.append(_Stage(*layers))
        self.out = nn.Sequential(GroupNorm32(g, ch), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1))

    def _run(self, stage: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled() and h.requires_grad:
            return grad_checkpoint(stage, h, emb, use_reentrant=False)
        return stage(h, emb)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.config.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"ADM needs H and W multiples of {m}, got {tuple(x.shape[-2:])}")
        dtype = next(self.parameters()).dtype
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(dtype))
        h, skips = x.to(dtype), []
        for stage in self.input_blocks:
            h = self._run(stage, h, emb)
            skips.append(h)
        middle = self._run(self.middle_block, h, emb)
        h = middle
        for stage in self.output_blocks:
            h = self._run(stage, torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h), middle
