"""SSP-IR's ControlNet: the structure processor (conditioning embedding whose three ``to_rgbs`` heads predict the
clean image at 1/2, 1/4 and 1/8 scale) and SD-1.5's encoder with image cross-attention, zero convs on its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cirbench.models import ModelError
from cirbench.models.sspir.sspir_unet import (
    OFFICIAL_UNET,
    SSPIRUNet,
    SSPIRUNetConfig,
    down_blocks,
    embed_time,
    mid_block,
    time_modules,
)

EMBEDDING_CHANNELS = (16, 32, 96, 256)


class StructureProcessor(nn.Module):
    """conv_in -> (conv, stride-2 conv -> to_rgb) x 3 -> zero conv_out; every conv followed by SiLU."""

    def __init__(self, out_channels: int, channels: tuple[int, ...] = EMBEDDING_CHANNELS, in_channels: int = 3):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            self.blocks.append(nn.Conv2d(c_in, c_in, 3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, 3, padding=1, stride=2))
            self.to_rgbs.append(nn.Conv2d(c_out, 3, 3, padding=1))
        self.conv_out = nn.Conv2d(channels[-1], out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, condition: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        hidden, rgbs = F.silu(self.conv_in(condition)), []
        for i, block in enumerate(self.blocks):
            hidden = F.silu(block(hidden))
            if i % 2:
                rgbs.append(self.to_rgbs[i // 2](hidden))
        return self.conv_out(hidden), rgbs


@dataclass(frozen=True)
class SSPIRControlNetConfig:
    unet: SSPIRUNetConfig = OFFICIAL_UNET
    conditioning_embedding_out_channels: tuple[int, ...] = EMBEDDING_CHANNELS

    def to_diffusers(self) -> dict[str, Any]:
        values = self.unet.to_diffusers("ControlNetModel")
        for key in ("up_block_types", "out_channels", "sample_size", "center_input_sample", "use_textual_restore",
                    "time_embedding_type", "mid_block_type", "dual_cross_attention"):  # fmt: skip
            values.pop(key, None)
        return {**values, "conditioning_channels": 3, "global_pool_conditions": False,
                "conditioning_embedding_out_channels": list(self.conditioning_embedding_out_channels),
                "controlnet_conditioning_channel_order": "rgb", "return_rgbs": True, "use_srresnet": False}  # fmt: skip

    @classmethod
    def from_diffusers(cls, config: dict[str, Any], where: str = "config.json") -> SSPIRControlNetConfig:
        if config.get("use_srresnet", True):  # the release's class default is True; training writes False
            raise ModelError(f"{where}: use_srresnet=true (the MSRResNet preprocessor) is not SSP-IR's official "
                             "training setting and is not built here")  # fmt: skip
        if not config.get("return_rgbs", True) or config.get("global_pool_conditions", False):
            raise ModelError(f"{where}: return_rgbs=false or global_pool_conditions=true is not SSP-IR")
        unet = {k: v for k, v in config.items() if k != "use_srresnet"}
        unet.setdefault("up_block_types", ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (len(unet["block_out_channels"]) - 1))
        channels = tuple(config.get("conditioning_embedding_out_channels", EMBEDDING_CHANNELS))
        return cls(SSPIRUNetConfig.from_diffusers(unet, where), channels)


def _zero_conv(channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class SSPIRControlNet(nn.Module):
    """``forward`` returns (the three RGB predictions, the down residuals, the mid residual), scaled residuals."""

    def __init__(self, config: SSPIRControlNetConfig = SSPIRControlNetConfig()) -> None:  # noqa: B008
        super().__init__()
        self.config = config
        unet = config.unet
        channels, temb = unet.block_out_channels, unet.block_out_channels[0] * 4
        self.conv_in = nn.Conv2d(unet.in_channels, channels[0], 3, padding=1)
        self.time_proj, self.time_embedding = time_modules(unet)
        self.controlnet_cond_embedding = StructureProcessor(channels[0], config.conditioning_embedding_out_channels)
        self.down_blocks = down_blocks(unet, temb)
        widths = [channels[0]]
        for i, c in enumerate(channels):
            widths += [c] * unet.layers_per_block + ([c] if i < len(channels) - 1 else [])
        self.controlnet_down_blocks = nn.ModuleList(_zero_conv(c) for c in widths)
        self.controlnet_mid_block = _zero_conv(channels[-1])
        self.mid_block = mid_block(unet, temb)

    @classmethod
    def from_unet(cls, unet: SSPIRUNet, channels: tuple[int, ...] = EMBEDDING_CHANNELS) -> SSPIRControlNet:
        """The release's initialisation: the U-Net's encoder copied (image attentions included), the rest new."""
        net = cls(SSPIRControlNetConfig(unet.config, channels))
        for name in ("conv_in", "time_embedding", "down_blocks", "mid_block"):
            getattr(net, name).load_state_dict(getattr(unet, name).state_dict(), strict=True)
        return net

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, text: torch.Tensor, condition: torch.Tensor,
                image: torch.Tensor, scale: float = 1.0) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:  # fmt: skip
        temb = embed_time(self, timestep, sample)
        embedding, rgbs = self.controlnet_cond_embedding(condition)
        hidden = self.conv_in(sample) + embedding
        skips: tuple[torch.Tensor, ...] = (hidden,)
        for block in self.down_blocks:
            hidden, outputs = block(hidden, temb, text, image)
            skips += outputs
        hidden = self.mid_block(hidden, temb, text, image)
        down = [conv(s) * scale for s, conv in zip(skips, self.controlnet_down_blocks, strict=True)]
        return rgbs, down, self.controlnet_mid_block(hidden) * scale
