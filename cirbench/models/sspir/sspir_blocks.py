"""SSP-IR's U-Net blocks: stock diffusers blocks plus the image cross-attention (CLIP tokens through TPBNet) and,
in the decoder, the pixel attention on the ControlNet residuals, run in the release's order resnet/image/text/pixel.

State-dict names and order equal the release's (``image_attentions`` / ``pixel_attentions`` beside the stock lists).
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.unets.unet_2d_blocks import (
    CrossAttnDownBlock2D,
    CrossAttnUpBlock2D,
    DownBlock2D,
    UNetMidBlock2DCrossAttn,
    UpBlock2D,
)
from torch import nn

IMAGE_TOKEN_DIM = 512  # TPBNet's output width: a block-constructor constant in the release, not a config key


def attention(heads: int, channels: int, context_dim: int, groups: int) -> Transformer2DModel:
    """One stock Transformer2DModel (self-attention, cross-attention on ``context_dim`` tokens, feed-forward)."""
    return Transformer2DModel(heads, channels // heads, in_channels=channels, num_layers=1,
                              cross_attention_dim=context_dim, norm_num_groups=groups)  # fmt: skip


def _move_to_end(module: nn.Module, name: str) -> None:
    """State-dict order follows registration: put the stock ``name`` list after the added ones, as the release does."""
    if name in module._modules:
        module._modules[name] = module._modules.pop(name)


def _tokens(residual: torch.Tensor) -> torch.Tensor:
    return residual.flatten(2).transpose(1, 2)  # b c h w -> b (h w) c


def _apply(block: Transformer2DModel, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    return block(hidden, encoder_hidden_states=context, return_dict=False)[0]


class ImageCrossAttnDownBlock(CrossAttnDownBlock2D):
    """Per layer: resnet -> image attention (CLIP tokens) -> text attention; then the stock downsampler."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, num_layers: int, heads: int,
                 cross_attention_dim: int, groups: int, eps: float, add_downsample: bool, padding: int) -> None:  # fmt: skip
        super().__init__(in_channels=in_channels, out_channels=out_channels, temb_channels=temb_channels,
                         num_layers=num_layers, resnet_eps=eps, resnet_groups=groups, num_attention_heads=heads,
                         cross_attention_dim=cross_attention_dim, add_downsample=add_downsample,
                         downsample_padding=padding)  # fmt: skip
        self.image_attentions = nn.ModuleList(
            attention(heads, out_channels, IMAGE_TOKEN_DIM, groups) for _ in range(num_layers)
        )
        _move_to_end(self, "downsamplers")

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, text: torch.Tensor,
                image: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:  # fmt: skip
        outputs: tuple[torch.Tensor, ...] = ()
        for resnet, image_attn, attn in zip(self.resnets, self.image_attentions, self.attentions, strict=True):
            hidden = _apply(attn, _apply(image_attn, resnet(hidden, temb), image), text)
            outputs += (hidden,)
        for downsampler in self.downsamplers or ():
            hidden = downsampler(hidden)
            outputs += (hidden,)
        return hidden, outputs


class PlainDownBlock(DownBlock2D):
    """The stock resnet-only down block (SD-1.5's last); the signature of the attention blocks."""

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, text: torch.Tensor = None,
                image: torch.Tensor = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:  # fmt: skip
        return super().forward(hidden, temb)


class ImageCrossAttnMidBlock(UNetMidBlock2DCrossAttn):
    """resnet, then per layer image attention -> text attention -> resnet."""

    def __init__(self, channels: int, temb_channels: int, heads: int, cross_attention_dim: int, groups: int,
                 eps: float, scale: float) -> None:  # fmt: skip
        super().__init__(in_channels=channels, temb_channels=temb_channels, resnet_eps=eps, resnet_groups=groups,
                         num_attention_heads=heads, cross_attention_dim=cross_attention_dim,
                         output_scale_factor=scale)  # fmt: skip
        self.image_attentions = nn.ModuleList([attention(heads, channels, IMAGE_TOKEN_DIM, groups)])

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, text: torch.Tensor,
                image: torch.Tensor) -> torch.Tensor:  # fmt: skip
        hidden = self.resnets[0](hidden, temb)
        for image_attn, attn, resnet in zip(self.image_attentions, self.attentions, self.resnets[1:], strict=True):
            hidden = resnet(_apply(attn, _apply(image_attn, hidden, image), text), temb)
        return hidden


class PixelAttnUpBlock(UpBlock2D):
    """Per layer: concatenate the skip -> resnet -> pixel attention on the matching ControlNet residual."""

    def __init__(self, in_channels: int, prev_channels: int, out_channels: int, temb_channels: int, num_layers: int,
                 groups: int, eps: float, add_upsample: bool, index: int) -> None:  # fmt: skip
        super().__init__(in_channels=in_channels, prev_output_channel=prev_channels, out_channels=out_channels,
                         temb_channels=temb_channels, resolution_idx=index, num_layers=num_layers, resnet_eps=eps,
                         resnet_groups=groups, add_upsample=add_upsample)  # fmt: skip
        # one head as wide as the block; the residuals it attends to must have out_channels channels
        self.pixel_attentions = nn.ModuleList(
            attention(1, out_channels, out_channels, groups) for _ in range(num_layers)
        )
        _move_to_end(self, "upsamplers")

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor,
                text: torch.Tensor, image: torch.Tensor, pixels: tuple[torch.Tensor, ...],
                upsample_size: torch.Size | None = None) -> torch.Tensor:  # fmt: skip
        for layer, (resnet, pix_attn) in enumerate(zip(self.resnets, self.pixel_attentions, strict=True)):
            hidden = resnet(torch.cat([hidden, skips[-1 - layer]], dim=1), temb)
            hidden = _apply(pix_attn, hidden, _tokens(pixels[-1 - layer]))
        for upsampler in self.upsamplers or ():
            hidden = upsampler(hidden, upsample_size)
        return hidden


class ImagePixelAttnUpBlock(CrossAttnUpBlock2D):
    """Per layer: skip -> resnet -> image attention -> text attention -> pixel attention (ControlNet residual)."""

    def __init__(self, in_channels: int, prev_channels: int, out_channels: int, temb_channels: int, num_layers: int,
                 heads: int, cross_attention_dim: int, groups: int, eps: float, add_upsample: bool,
                 index: int) -> None:  # fmt: skip
        super().__init__(in_channels=in_channels, out_channels=out_channels, prev_output_channel=prev_channels,
                         temb_channels=temb_channels, resolution_idx=index, num_layers=num_layers, resnet_eps=eps,
                         resnet_groups=groups, num_attention_heads=heads, cross_attention_dim=cross_attention_dim,
                         add_upsample=add_upsample)  # fmt: skip
        skip_channels = [in_channels if layer == num_layers - 1 else out_channels for layer in range(num_layers)]
        self.pixel_attentions = nn.ModuleList(attention(heads, out_channels, c, groups) for c in skip_channels)
        self.image_attentions = nn.ModuleList(
            attention(heads, out_channels, IMAGE_TOKEN_DIM, groups) for _ in range(num_layers)
        )
        _move_to_end(self, "upsamplers")

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor,
                text: torch.Tensor, image: torch.Tensor, pixels: tuple[torch.Tensor, ...],
                upsample_size: torch.Size | None = None) -> torch.Tensor:  # fmt: skip
        layers = zip(self.resnets, self.image_attentions, self.attentions, self.pixel_attentions, strict=True)
        for layer, (resnet, image_attn, attn, pix_attn) in enumerate(layers):
            hidden = resnet(torch.cat([hidden, skips[-1 - layer]], dim=1), temb)
            hidden = _apply(attn, _apply(image_attn, hidden, image), text)
            hidden = _apply(pix_attn, hidden, _tokens(pixels[-1 - layer]))
        for upsampler in self.upsamplers or ():
            hidden = upsampler(hidden, upsample_size)
        return hidden
