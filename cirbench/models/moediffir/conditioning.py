"""MoE-DiffIR's cross-attention contexts: the V2T adapter on CLIP RN50 (with the latent Enhancer) and the empty prompt.

V2T: RN50 layer-4 map -> 3x3 conv -> 49 tokens, 49 learned tokens appended, x + ReLU(bottleneck(x)) (98 x 1024).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cirbench.models.blocks.restormer import RestormerBlock
from cirbench.models.moediffir.clip_towers import (
    ModifiedResNet,
    ResNetConfig,
    TextCLIP,
    TextConfig,
    empty_prompt_tokens,
)


@dataclass(frozen=True)
class V2TConfig:
    resnet: ResNetConfig = ResNetConfig()
    context_dim: int = 1024
    prompt_tokens: int = 49
    adapter_hidden: int = 256


class _PromptTokens(nn.Module):
    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.prompt_param = nn.Parameter(torch.zeros(1, tokens, dim))


class _Adapter(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.ReLU(), nn.Linear(hidden, dim, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(x)


class V2TAdapter(ModifiedResNet):
    """Visual-to-text adapter: the RN50 tower's parameters sit at its top level, as in the official file."""

    def __init__(self, cfg: V2TConfig = V2TConfig()) -> None:
        super().__init__(cfg.resnet)
        self.v2t_cfg = cfg
        channels = cfg.resnet.width * 32
        self.conv = nn.Sequential(nn.Conv2d(channels, cfg.context_dim, 3, padding=1))
        self.prompt_model_semantic = _PromptTokens(cfg.prompt_tokens, cfg.context_dim)
        self.adapter1 = _Adapter(cfg.context_dim, cfg.adapter_hidden)

    def context(self, image: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] at the RN50's input size -> [B, 49 + 49, context_dim]."""
        tokens = self.conv(self.features(image)).flatten(2).transpose(1, 2)
        prompt = self.prompt_model_semantic.prompt_param.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        return self.adapter1(torch.cat([tokens, prompt], dim=1))


def enhancer_encoder(latent: int = 4, dim: int = 256) -> nn.Sequential:
    """transformer_encoder: conv 4 -> 256, two Restormer blocks (1 head, FFN 2.66, WithBias norm, no conv bias)."""
    return nn.Sequential(nn.Conv2d(latent, dim, 3, padding=1), RestormerBlock(dim, 1, 2.66, False), RestormerBlock(dim, 1, 2.66, False))


def enhancer_decoder(latent: int = 4, dim: int = 256) -> nn.Sequential:
    return nn.Sequential(RestormerBlock(dim, 1, 2.66, False), RestormerBlock(dim, 1, 2.66, False), nn.Conv2d(dim, latent, 1))


def resize_for_clip(image: torch.Tensor, size: int) -> torch.Tensor:
    """The release's Resize(size) + CenterCrop(size) on a tensor with its pinned torchvision 0.13: short side to
    ``size`` (bilinear, no antialiasing), then the centre ``size`` x ``size``; values are not clamped."""
    h, w = image.shape[-2:]
    out = (int(size * h / w), size) if w <= h else (size, int(size * w / h))
    resized = F.interpolate(image.float(), size=out, mode="bilinear", align_corners=False, antialias=False)
    top, left = int(round((out[0] - size) / 2.0)), int(round((out[1] - size) / 2.0))
    return resized[..., top : top + size, left : left + size].to(image.dtype)


class EmptyPromptEmbedder(nn.Module):
    """SD 2's frozen OpenCLIP ViT-H text tower (``cond_stage_model.model.*``), used only for the prompt ''."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.model = TextCLIP(cfg)

    @torch.no_grad()
    def empty_context(self) -> torch.Tensor:
        """[1, 77, width]: the penultimate-layer embedding of '' (computed once from the loaded weights)."""
        device = self.model.token_embedding.weight.device
        return self.model.penultimate(empty_prompt_tokens(self.model.text_cfg.context_length).to(device)).float()
