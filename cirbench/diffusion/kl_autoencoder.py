"""The KL-regularised autoencoder of latent diffusion (SD's first stage) and StableSR/MoE-DiffIR's fusion decoder.

ldm parameter names (``encoder.down.0.block.0.norm1``, ``decoder.up.3.upsample.conv``, ``quant_conv``); the fusion
decoder adds ``fusion_layer_{1,2}`` that blend the LQ's encoder features into decoder levels 1 and 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cirbench.diffusion.samplers import Generators, seeded_noise


@dataclass(frozen=True)
class AutoencoderConfig:
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    embed_dim: int = 4
    in_channels: int = 3
    out_ch: int = 3
    groups: int = 32
    fusion_levels: tuple[int, ...] = ()  # decoder levels fed by encoder features (Decoder_Finetuned: (1, 2))


SD_AUTOENCODER = AutoencoderConfig()
FUSION_AUTOENCODER = AutoencoderConfig(fusion_levels=(2, 1))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """GN-swish-conv twice plus the input; a 1x1 conv on the skip when widths differ (named ``shortcut``:
    ``nin_shortcut`` in the autoencoder, ``conv_out`` in the fusion layers)."""

    def __init__(self, cin: int, cout: int, groups: int, shortcut: str = "nin_shortcut") -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.shortcut = shortcut
        if cin != cout:
            setattr(self, shortcut, nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (getattr(self, self.shortcut)(x) if hasattr(self, self.shortcut) else x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all positions, with 1x1-conv projections."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.q, self.k, self.v = (nn.Conv2d(channels, channels, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (layer(y).flatten(2).transpose(1, 2)[:, None] for layer in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class _Resample(nn.Module):
    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(channels, channels, 3, stride=2 if down else 1, padding=0 if down else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(channels: int, groups: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1 = ResnetBlock(channels, channels, groups), AttnBlock(channels, groups)
    mid.block_2 = ResnetBlock(channels, channels, groups)
    return mid


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = cfg.ch
        for level, mult in enumerate(cfg.ch_mult):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                stage.block.append(ResnetBlock(cin, cfg.ch * mult, cfg.groups))
                cin = cfg.ch * mult
            stage.attn = nn.ModuleList()
            if level != len(cfg.ch_mult) - 1:
                stage.downsample = _Resample(cin, down=True)
            self.down.append(stage)
        self.mid = _mid(cin, cfg.groups)
        self.norm_out = _norm(cin, cfg.groups)
        self.conv_out = nn.Conv2d(cin, 2 * cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Posterior moments, and each level's features after its blocks (what the fusion decoder takes)."""
        h, features = self.conv_in(x), {}
        for level, stage in enumerate(self.down):
            for block in stage.block:
                h = block(h)
            features[level] = h
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h))), features


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: five convolutions, each fed every earlier output (growth 32)."""

    def __init__(self, channels: int, growth: int = 32) -> None:
        super().__init__()
        for index in range(1, 5):
            setattr(self, f"conv{index}", nn.Conv2d(channels + (index - 1) * growth, growth, 3, padding=1))
        self.conv5 = nn.Conv2d(channels + 4 * growth, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for index in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{index}")(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(channels), DenseBlock(channels), DenseBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class FusionLayer(nn.Module):
    """Controllable feature wrapping: decoder + w * f(encoder features, decoder features)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.encode_enc_1 = ResnetBlock(2 * channels, channels, groups, shortcut="conv_out")
        self.encode_enc_2 = nn.Sequential(RRDB(channels), RRDB(channels))
        self.encode_enc_3 = ResnetBlock(channels, channels, groups, shortcut="conv_out")

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, weight: float) -> torch.Tensor:
        fused = self.encode_enc_3(self.encode_enc_2(self.encode_enc_1(torch.cat([enc, dec], dim=1))))
        return dec + weight * fused


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        cin = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, padding=1)
        self.mid = _mid(cin, cfg.groups)
        stages: list[nn.Module] = []
        for level in reversed(range(len(cfg.ch_mult))):
            stage = nn.Module()
            stage.block = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                stage.block.append(ResnetBlock(cin, cfg.ch * cfg.ch_mult[level], cfg.groups))
                cin = cfg.ch * cfg.ch_mult[level]
            stage.attn = nn.ModuleList()
            if level:
                stage.upsample = _Resample(cin, down=False)
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        for level in cfg.fusion_levels:
            setattr(self, f"fusion_layer_{level}", FusionLayer(cfg.ch * cfg.ch_mult[level], cfg.groups))
        self.norm_out = _norm(cin, cfg.groups)
        self.conv_out = nn.Conv2d(cin, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor, features: dict[int, torch.Tensor] | None = None, weight: float = 1.0) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(range(len(self.up))):
            stage = self.up[level]
            for block in stage.block:
                h = block(h)
            if level in self.cfg.fusion_levels and features is not None:
                h = getattr(self, f"fusion_layer_{level}")(features[level], h, weight)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class KLAutoencoder(nn.Module):
    """encode -> (mean, logvar) of the latent posterior (with encoder features); decode(z[, features, weight])."""

    def __init__(self, cfg: AutoencoderConfig = SD_AUTOENCODER) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
        moments, features = self.encoder(x)
        mean, logvar = self.quant_conv(moments).chunk(2, dim=1)
        return mean, torch.clamp(logvar, -30.0, 20.0), features

    def sample(self, x: torch.Tensor, generator: Generators = None) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """A posterior sample z = mean + std * noise (noise from ``generator``), and the encoder features."""
        mean, logvar, features = self.encode(x)
        return mean + torch.exp(0.5 * logvar) * seeded_noise(mean, generator), features

    def decode(self, z: torch.Tensor, features: dict[int, torch.Tensor] | None = None, weight: float = 1.0) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z), features, weight)
