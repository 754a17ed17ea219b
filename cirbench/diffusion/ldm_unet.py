"""The Stable Diffusion 2 latent U-Net with the original (ldm) parameter names, plus optional SPADE conditioning.

SPADE layers (MoE-DiffIR / StableSR style) sit in the middle block's first ResBlock and every output block's first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cirbench.diffusion.adm import GroupNorm32, timestep_embedding

Cond = dict[str, torch.Tensor]


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)  # downsampling factors that carry a transformer
    num_head_channels: int = 64
    context_dim: int = 1024
    spade_channels: int = 0  # width of the SPADE condition maps (MoE-DiffIR: 256); 0 = plain SD U-Net
    spade_hidden: int = 128
    groups: int = 32


SD2_UNET = UNetConfig()
MOEDIFFIR_UNET = UNetConfig(spade_channels=256)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation: GroupNorm, then a scale and shift predicted from a condition map."""

    def __init__(self, channels: int, cond_channels: int, hidden: int = 128, groups: int = 32) -> None:
        super().__init__()
        self.param_free_norm = GroupNorm32(groups, channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        cond = F.interpolate(cond.to(x.dtype), size=x.shape[-2:], mode="nearest")
        actv = self.mlp_shared(cond)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class ResBlock(nn.Module):
    """Timestep-conditioned residual block; with ``spade`` the block's output is SPADE-modulated before the skip."""

    def __init__(self, cfg: UNetConfig, channels: int, emb_channels: int, out_channels: int, spade: bool) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(cfg.groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        if spade:
            self.spade = SPADE(out_channels, cfg.spade_channels, cfg.spade_hidden, cfg.groups)
        self.out_layers = nn.Sequential(
            GroupNorm32(cfg.groups, out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cond: Cond | None) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).type(x.dtype)[..., None, None]
        h = self.out_layers(h)
        if hasattr(self, "spade"):
            if cond is None:
                raise ValueError("this U-Net has SPADE layers: it needs the prompt condition maps")
            h = self.spade(h, cond[str(h.shape[-1])])
        return self.skip_connection(x) + h


class CrossAttention(nn.Module):
    """Multi-head (self- or cross-) attention with ldm's names: to_q/to_k/to_v without bias, to_out.0 with bias."""

    def __init__(self, query_dim: int, context_dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        batch = x.shape[0]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(context)), split(self.to_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[3]))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, dim, heads, dim_head)
        self.ff = nn.Module()
        self.ff.net = nn.Sequential(GEGLU(dim, dim * 4), nn.Dropout(0.0), nn.Linear(dim * 4, dim))
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff.net(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """SD-2's transformer over a feature map, with linear in/out projections (use_linear_in_transformer)."""

    def __init__(self, channels: int, heads: int, dim_head: int, context_dim: int, groups: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, context_dim)])
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for block in self.transformer_blocks:
            tokens = block(tokens, context.to(tokens.dtype))
        return self.proj_out(tokens).transpose(1, 2).reshape(b, c, h, w) + x


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Stage(nn.ModuleList):
    """One entry of input_blocks / middle_block / output_blocks: layers applied in order with what each needs."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, cond: Cond | None) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, cond)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            else:
                x = layer(x)
        return x


class LDMUNet(nn.Module):
    """eps(x_t, t, context[, SPADE maps]) with SD 2's ``model.diffusion_model.*`` layout."""

    def __init__(self, cfg: UNetConfig = SD2_UNET) -> None:
        super().__init__()
        self.cfg = cfg
        ch, emb = cfg.model_channels, cfg.model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input_blocks = nn.ModuleList([Stage([nn.Conv2d(cfg.in_channels, ch, 3, padding=1)])])
        skips, factor = [ch], 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(cfg, ch, emb, mult * cfg.model_channels, spade=False)]
                ch = mult * cfg.model_channels
                if factor in cfg.attention_resolutions:
                    layers.append(self._transformer(ch))
                self.input_blocks.append(Stage(layers))
                skips.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Stage([Downsample(ch)]))
                skips.append(ch)
                factor *= 2
        spade = cfg.spade_channels > 0
        self.middle_block = Stage([ResBlock(cfg, ch, emb, ch, spade), self._transformer(ch), ResBlock(cfg, ch, emb, ch, False)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for index in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(cfg, ch + skips.pop(), emb, mult * cfg.model_channels, spade)]
                ch = mult * cfg.model_channels
                if factor in cfg.attention_resolutions:
                    layers.append(self._transformer(ch))
                if level and index == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    factor //= 2
                self.output_blocks.append(Stage(layers))
        self.out = nn.Sequential(GroupNorm32(cfg.groups, ch), nn.SiLU(), nn.Conv2d(ch, cfg.out_channels, 3, padding=1))

    def _transformer(self, ch: int) -> SpatialTransformer:
        heads = ch // self.cfg.num_head_channels
        return SpatialTransformer(ch, heads, self.cfg.num_head_channels, self.cfg.context_dim, self.cfg.groups)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, cond: Cond | None = None) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels).to(x.dtype))
        skips, h = [], x
        for stage in self.input_blocks:
            h = stage(h, emb, context, cond)
            skips.append(h)
        h = self.middle_block(h, emb, context, cond)
        for stage in self.output_blocks:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb, context, cond)
        return self.out(h)
