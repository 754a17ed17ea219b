"""CLIP towers MoE-DiffIR uses: DA-CLIP's ViT-B/32 (with its control copy), OpenAI's RN50, OpenCLIP's text tower.

open_clip / OpenAI CLIP parameter names (``transformer.resblocks.0.attn.in_proj_weight``, ``attnpool.k_proj``).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TransformerConfig:
    width: int
    layers: int
    heads: int


@dataclass(frozen=True)
class VisionConfig:
    width: int = 768
    layers: int = 12
    heads: int = 12
    patch: int = 32
    image: int = 224
    output_dim: int = 512


@dataclass(frozen=True)
class TextConfig:
    width: int = 512
    layers: int = 12
    heads: int = 8
    output_dim: int = 512
    context_length: int = 77
    vocab_size: int = 49408


VIT_B32 = VisionConfig()
VIT_B32_TEXT = TextConfig()
VIT_H14_TEXT = TextConfig(width=1024, layers=24, heads=16, output_dim=1024)
SOT_TOKEN, EOT_TOKEN = 49406, 49407  # CLIP's BPE start/end-of-text ids; padding is 0


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(width, width * 4), gelu=nn.GELU(), c_proj=nn.Linear(width * 4, width)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(cfg.width, cfg.heads) for _ in range(cfg.layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, skip_last: int = 0) -> torch.Tensor:
        for block in self.resblocks[: len(self.resblocks) - skip_last]:
            x = block(x, mask)
        return x


class ControlTransformer(nn.Module):
    """DA-CLIP's controller: the copied transformer plus one zero-initialised linear per layer.

    The per-layer outputs of ``zero_modules`` (DA-CLIP's "hiddens") are not used by MoE-DiffIR, so not computed.
    """

    def __init__(self, transformer: Transformer, width: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.zero_modules = nn.ModuleList(nn.Linear(width, width) for _ in transformer.resblocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(x)


class VisionTower(nn.Module):
    def __init__(self, cfg: VisionConfig = VIT_B32) -> None:
        super().__init__()
        self.cfg = cfg
        scale = cfg.width**-0.5
        self.conv1 = nn.Conv2d(3, cfg.width, cfg.patch, stride=cfg.patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(cfg.width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((cfg.image // cfg.patch) ** 2 + 1, cfg.width))
        self.ln_pre = nn.LayerNorm(cfg.width)
        self.transformer: nn.Module = Transformer(TransformerConfig(cfg.width, cfg.layers, cfg.heads))
        self.ln_post = nn.LayerNorm(cfg.width)
        self.proj = nn.Parameter(scale * torch.randn(cfg.width, cfg.output_dim))

    def patch_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """MoE-DiffIR's variant of the forward pass: patch tokens only (no class token, no positional embedding)."""
        tokens = self.conv1(image.to(self.conv1.weight.dtype)).flatten(2).transpose(1, 2)
        return self.transformer(self.ln_pre(tokens))


def daclip_quirk(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """What MoE-DiffIR does to DA-CLIP's [B, N, C] tokens before its cross-attention, reproduced on purpose.

    The tokens are reinterpreted (plain reshape, no permute) as a [B, C, g, g] map, L2-normalised over its last
    axis (the g "columns"), then read back as g*g tokens of C channels: channels and positions get mixed.
    """
    b, n, c = tokens.shape
    mapped = tokens.reshape(b, c, grid, grid)
    mapped = mapped / mapped.norm(dim=-1, keepdim=True)
    return mapped.flatten(2).transpose(1, 2)


class TextCLIP(nn.Module):
    """A CLIP text tower with open_clip's top-level names (token_embedding, transformer, ln_final, ...)."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.text_cfg = cfg
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width).normal_(std=0.01))
        self.text_projection = nn.Parameter(torch.empty(cfg.width, cfg.output_dim).normal_(std=cfg.width**-0.5))
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))
        self.transformer = Transformer(TransformerConfig(cfg.width, cfg.layers, cfg.heads))
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.ln_final = nn.LayerNorm(cfg.width)

    def penultimate(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, 77] token ids -> [B, 77, width] from the second-to-last layer, then ln_final (SD 2's text context)."""
        n = tokens.shape[1]
        mask = torch.full((n, n), float("-inf"), device=tokens.device).triu(1)
        x = self.token_embedding(tokens) + self.positional_embedding[:n]
        return self.ln_final(self.transformer(x, mask, skip_last=1))


def empty_prompt_tokens(context_length: int = 77) -> torch.Tensor:
    """The token ids of the empty prompt '' (start, end, zero padding): no tokenizer needed."""
    tokens = torch.zeros(1, context_length, dtype=torch.long)
    tokens[0, 0], tokens[0, 1] = SOT_TOKEN, EOT_TOKEN
    return tokens


class CLIPModel(TextCLIP):
    def __init__(self, vision: VisionConfig, text: TextConfig) -> None:
        super().__init__(text)
        self.visual = VisionTower(vision)


class DaCLIP(nn.Module):
    """DA-CLIP: a CLIP (``clip``; ``visual`` aliases clip.visual) and a controller copy of the visual tower."""

    def __init__(self, vision: VisionConfig = VIT_B32, text: TextConfig = VIT_B32_TEXT) -> None:
        super().__init__()
        self.clip = CLIPModel(vision, text)
        self.visual = self.clip.visual
        self.visual_control = copy.deepcopy(self.clip.visual)
        self.visual_control.transformer = ControlTransformer(self.visual_control.transformer, vision.width)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))

    def degradation_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """LQ in [-1, 1] at the tower's input size -> MoE-DiffIR's routing context [B, g*g, width]."""
        cfg = self.visual_control.cfg
        tokens = self.visual_control.patch_tokens(image)
        return daclip_quirk(tokens, cfg.image // cfg.patch)


@dataclass(frozen=True)
class ResNetConfig:
    layers: tuple[int, ...] = (3, 4, 6, 3)
    width: int = 64
    output_dim: int = 1024
    heads: int = 32
    image: int = 224


RN50 = ResNetConfig()


class Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False), nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        if stride > 1 or cin != planes * 4:
            self.downsample = nn.Sequential(OrderedDict(
                [("-1", nn.AvgPool2d(stride)), ("0", nn.Conv2d(cin, planes * 4, 1, bias=False)), ("1", nn.BatchNorm2d(planes * 4))]
            ))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.avgpool(F.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if hasattr(self, "downsample") else x))


class AttentionPool(nn.Module):
    def __init__(self, grid: int, dim: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(grid**2 + 1, dim) / dim**0.5)
        self.k_proj, self.q_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, output_dim)


class ModifiedResNet(nn.Module):
    """OpenAI CLIP's RN50 image tower (3-conv stem, anti-aliased strides); ``features`` stops before attnpool."""

    def __init__(self, cfg: ResNetConfig = RN50) -> None:
        super().__init__()
        w = cfg.width
        self.conv1, self.bn1 = nn.Conv2d(3, w // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w // 2)
        self.conv2, self.bn2 = nn.Conv2d(w // 2, w // 2, 3, padding=1, bias=False), nn.BatchNorm2d(w // 2)
        self.conv3, self.bn3 = nn.Conv2d(w // 2, w, 3, padding=1, bias=False), nn.BatchNorm2d(w)
        self.avgpool = nn.AvgPool2d(2)
        cin = w
        for index, blocks in enumerate(cfg.layers):
            planes = w * 2**index
            layer = [Bottleneck(cin, planes, 1 if index == 0 else 2)]
            layer += [Bottleneck(planes * 4, planes, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
            cin = planes * 4
        self.attnpool = AttentionPool(cfg.image // 32, cin, cfg.heads, cfg.output_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.conv1.weight.dtype)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.relu(bn(conv(x)))
        x = self.avgpool(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
