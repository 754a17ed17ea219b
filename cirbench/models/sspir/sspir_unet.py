"""SSP-IR's U-Net: SD-1.5's U-Net with image cross-attention in every attention block and pixel attention on the
ControlNet residuals in the decoder; config as a dataclass that reads and writes the release's ``config.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from cirbench.models import ModelError
from cirbench.models.sspir.sspir_blocks import (
    ImageCrossAttnDownBlock,
    ImageCrossAttnMidBlock,
    ImagePixelAttnUpBlock,
    PixelAttnUpBlock,
    PlainDownBlock,
)

DIFFUSERS_VERSION = "0.21.0"  # the release's pinned diffusers; written into the config.json files we save
# keys of a diffusers UNet2DConditionModel / ControlNetModel config.json that must keep SD-1.5's value here
_FIXED = {"act_fn": "silu", "center_input_sample": False, "downsample_padding": 1, "flip_sin_to_cos": True,
          "freq_shift": 0, "mid_block_scale_factor": 1, "use_linear_projection": False, "class_embed_type": None,
          "addition_embed_type": None, "encoder_hid_dim": None, "only_cross_attention": False,
          "upcast_attention": False, "resnet_time_scale_shift": "default", "num_attention_heads": None,
          "transformer_layers_per_block": 1, "dual_cross_attention": False, "time_embedding_type": "positional",
          "mid_block_type": "UNetMidBlock2DCrossAttn", "use_srresnet": False}  # fmt: skip


ADDITIONS = (".image_attentions.", ".pixel_attentions.")  # SSP-IR's keys that stock SD-1.5 lacks


def is_addition(key: str) -> bool:
    """True for the U-Net keys SSP-IR adds to SD-1.5 (not in SD-1.5's file; trained from their random init)."""
    return any(part in key for part in ADDITIONS)


@dataclass(frozen=True)
class SSPIRUNetConfig:
    """The values that shape the network; the rest of a diffusers config must be SD-1.5's (``_FIXED``)."""

    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    up_block_types: tuple[str, ...] = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    layers_per_block: int = 2
    cross_attention_dim: int = 768
    attention_head_dim: int = 8  # SD-1.5's name for the number of heads (a diffusers quirk)
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    in_channels: int = 4
    out_channels: int = 4
    sample_size: int = 64
    use_image_cross_attention: bool = True
    use_textual_restore: bool = False

    def __post_init__(self) -> None:
        if not self.use_image_cross_attention or self.use_textual_restore:
            raise ModelError("SSP-IR's U-Net is use_image_cross_attention=true, use_textual_restore=false")
        if self.up_block_types[0] == "UpBlock2D" and self.block_out_channels[-1] != self.block_out_channels[-2]:
            raise ModelError("SSP-IR's UpBlock2D pixel attention needs the last two block_out_channels equal")

    def to_diffusers(self, class_name: str = "UNet2DConditionModel") -> dict[str, Any]:
        """The config.json the release's ``from_pretrained`` reads (lists, version, fixed SD-1.5 keys)."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        fixed = {k: v for k, v in _FIXED.items() if k != "use_srresnet"}
        return {"_class_name": class_name, "_diffusers_version": DIFFUSERS_VERSION, **fixed, **values}

    @classmethod
    def from_diffusers(cls, config: dict[str, Any], where: str = "config.json") -> SSPIRUNetConfig:
        """Read a diffusers config; ModelError naming every key whose value this implementation does not build."""
        wrong = [f"{k}={config[k]!r} (expected {v!r})" for k, v in _FIXED.items() if k in config and config[k] != v]
        if wrong:
            raise ModelError(f"{where}: unsupported value(s) {', '.join(wrong)}")
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}
        if isinstance(values.get("attention_head_dim"), tuple):
            heads = set(values["attention_head_dim"])
            if len(heads) != 1:
                raise ModelError(f"{where}: per-block attention_head_dim {values['attention_head_dim']} is not built")
            values["attention_head_dim"] = heads.pop()
        return cls(**values)


OFFICIAL_UNET = SSPIRUNetConfig()
# the smallest U-Net with the release's key patterns (SSPIR_PLAN.md §3): three levels, one layer each
TINY_UNET = SSPIRUNetConfig(block_out_channels=(32, 64, 64), down_block_types=("CrossAttnDownBlock2D",) * 2 +
                            ("DownBlock2D",), up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 2,
                            layers_per_block=1, cross_attention_dim=32, attention_head_dim=2, sample_size=8)  # fmt: skip


def down_blocks(config: SSPIRUNetConfig, temb: int) -> nn.ModuleList:
    """The encoder (shared by the U-Net and the ControlNet)."""
    blocks, channels = [], config.block_out_channels
    for i, kind in enumerate(config.down_block_types):
        common = dict(in_channels=channels[max(i - 1, 0)], out_channels=channels[i], temb_channels=temb,
                      num_layers=config.layers_per_block, add_downsample=i < len(channels) - 1)  # fmt: skip
        if kind == "CrossAttnDownBlock2D":
            blocks.append(ImageCrossAttnDownBlock(**common, heads=config.attention_head_dim,
                                                  cross_attention_dim=config.cross_attention_dim,
                                                  groups=config.norm_num_groups, eps=config.norm_eps, padding=1))  # fmt: skip
        elif kind == "DownBlock2D":
            blocks.append(PlainDownBlock(**common, resnet_eps=config.norm_eps, resnet_groups=config.norm_num_groups,
                                         downsample_padding=1))  # fmt: skip
        else:
            raise ModelError(f"down block type '{kind}' is not part of SSP-IR")
    return nn.ModuleList(blocks)


def mid_block(config: SSPIRUNetConfig, temb: int) -> ImageCrossAttnMidBlock:
    return ImageCrossAttnMidBlock(config.block_out_channels[-1], temb, config.attention_head_dim,
                                  config.cross_attention_dim, config.norm_num_groups, config.norm_eps, 1.0)  # fmt: skip


def time_modules(config: SSPIRUNetConfig) -> tuple[Timesteps, TimestepEmbedding]:
    width = config.block_out_channels[0]
    return Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0), TimestepEmbedding(width, width * 4)


def embed_time(module: nn.Module, timestep: torch.Tensor | int, sample: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
    return module.time_embedding(module.time_proj(t).to(sample.dtype))


class SSPIRUNet(nn.Module):
    """ε-prediction U-Net; ``forward`` needs the ControlNet's residuals and TPBNet's image tokens (as released)."""

    def __init__(self, config: SSPIRUNetConfig = OFFICIAL_UNET) -> None:
        super().__init__()
        self.config = config
        channels, temb = config.block_out_channels, config.block_out_channels[0] * 4
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.time_proj, self.time_embedding = time_modules(config)
        self.down_blocks = down_blocks(config, temb)
        self.up_blocks = nn.ModuleList()
        self.mid_block = mid_block(config, temb)
        reversed_channels = list(reversed(channels))
        for i, kind in enumerate(config.up_block_types):
            common = dict(in_channels=reversed_channels[min(i + 1, len(channels) - 1)],
                          prev_channels=reversed_channels[max(i - 1, 0)], out_channels=reversed_channels[i],
                          temb_channels=temb, num_layers=config.layers_per_block + 1, groups=config.norm_num_groups,
                          eps=config.norm_eps, add_upsample=i < len(channels) - 1, index=i)  # fmt: skip
            if kind == "UpBlock2D":
                self.up_blocks.append(PixelAttnUpBlock(**common))
            elif kind == "CrossAttnUpBlock2D":
                self.up_blocks.append(ImagePixelAttnUpBlock(**common, heads=config.attention_head_dim,
                                                            cross_attention_dim=config.cross_attention_dim))  # fmt: skip
            else:
                raise ModelError(f"up block type '{kind}' is not part of SSP-IR")
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels[0], config.out_channels, 3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, text: torch.Tensor,
                down_residuals: tuple[torch.Tensor, ...] | list[torch.Tensor], mid_residual: torch.Tensor,
                image: torch.Tensor) -> torch.Tensor:  # fmt: skip
        if down_residuals is None or mid_residual is None or image is None:
            raise ModelError("SSP-IR's U-Net needs the ControlNet's residuals and TPBNet's image tokens")
        temb = embed_time(self, timestep, sample)
        hidden = self.conv_in(sample)
        skips: tuple[torch.Tensor, ...] = (hidden,)
        for block in self.down_blocks:
            hidden, outputs = block(hidden, temb, text, image)
            skips += outputs
        if len(skips) != len(down_residuals):
            raise ModelError(f"the U-Net has {len(skips)} skips but the ControlNet gave {len(down_residuals)}")
        skips = tuple(s + r for s, r in zip(skips, down_residuals, strict=True))
        hidden = self.mid_block(hidden, temb, text, image) + mid_residual
        pixels = tuple(down_residuals)
        odd = any(s % 2 ** (len(self.up_blocks) - 1) for s in sample.shape[-2:])
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            own, skips = skips[-n:], skips[:-n]
            context, pixels = pixels[-n:], pixels[:-n]
            size = skips[-1].shape[2:] if odd and i < len(self.up_blocks) - 1 else None
            hidden = block(hidden, own, temb, text, image, context, size)
        return self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
