"""CLIP ViT-L/14 towers in the key naming of the files SSP-IR loads (``text_model.*`` of SD-1.5's text encoder,
``vision_model.*`` of openai/clip-vit-large-patch14): written here, tested against transformers' CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CLIPTowerConfig:
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    layer_norm_eps: float = 1e-5
    vocab_size: int = 49408  # text
    max_position_embeddings: int = 77  # text
    image_size: int = 224  # vision
    patch_size: int = 14  # vision
    hidden_act: str = "quick_gelu"

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> CLIPTowerConfig:
        known = {f.name for f in fields(cls)}
        if config.get("hidden_act", "quick_gelu") not in ("quick_gelu", "gelu"):
            raise ValueError(f"hidden_act {config['hidden_act']!r} is not a CLIP activation")
        return cls(**{k: v for k, v in config.items() if k in known})


class _Attention(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        d = c.hidden_size
        self.heads = c.num_attention_heads
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (p(x).view(b, n, self.heads, d // self.heads).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _MLP(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c.hidden_size, c.intermediate_size), nn.Linear(c.intermediate_size, c.hidden_size)
        self.quick = c.hidden_act == "quick_gelu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(h * torch.sigmoid(1.702 * h) if self.quick else F.gelu(h))


class _Layer(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        self.self_attn = _Attention(c)
        self.layer_norm1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = _MLP(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, causal: bool) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), causal)
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))

    def forward(self, x: torch.Tensor, causal: bool) -> list[torch.Tensor]:
        states = [x]
        for layer in self.layers:
            states.append(layer(states[-1], causal))
        return states


class _TextEmbeddings(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).unsqueeze(0))
        self.token_embedding = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embedding = nn.Embedding(c.max_position_embeddings, c.hidden_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids) + self.position_embedding(self.position_ids[:, : ids.shape[1]])


class _TextTransformer(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        self.embeddings, self.encoder = _TextEmbeddings(c), _Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


class CLIPTextTower(nn.Module):
    """``tower(ids)[0]`` is the last hidden state after the final layer norm (what SD-1.5 conditions on)."""

    def __init__(self, config: CLIPTowerConfig = CLIPTowerConfig()) -> None:  # noqa: B008
        super().__init__()
        self.config = config
        self.text_model = _TextTransformer(config)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor]:
        m = self.text_model
        return (m.final_layer_norm(m.encoder(m.embeddings(ids), causal=True)[-1]),)


class _VisionEmbeddings(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        self.class_embedding = nn.Parameter(torch.randn(c.hidden_size))
        positions = (c.image_size // c.patch_size) ** 2 + 1
        self.register_buffer("position_ids", torch.arange(positions).unsqueeze(0))
        self.patch_embedding = nn.Conv2d(3, c.hidden_size, c.patch_size, stride=c.patch_size, bias=False)
        self.position_embedding = nn.Embedding(positions, c.hidden_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(pixels.shape[0], 1, -1).to(patches.dtype)
        return torch.cat([cls, patches], dim=1) + self.position_embedding(self.position_ids)


class _VisionTransformer(nn.Module):
    def __init__(self, c: CLIPTowerConfig) -> None:
        super().__init__()
        self.embeddings = _VisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)  # (sic: the files' spelling)
        self.encoder = _Encoder(c)
        self.post_layernorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)


@dataclass
class VisionOutput:
    hidden_states: tuple[torch.Tensor, ...]  # the encoder input and each layer's output (before post-layernorm)


class CLIPVisionTower(nn.Module):
    """``tower(pixel_values=x).hidden_states``: 1 + num_hidden_layers states, as transformers numbers them."""

    def __init__(self, config: CLIPTowerConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_model = _VisionTransformer(config)

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = True) -> VisionOutput:
        m = self.vision_model
        return VisionOutput(tuple(m.encoder(m.pre_layrnorm(m.embeddings(pixel_values)), causal=False)))
