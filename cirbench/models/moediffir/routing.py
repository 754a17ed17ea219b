"""MoE-DiffIR's MoE-Prompt module: a 4-scale ViT over the LQ latent whose tokens pick prompt experts per task.

Noisy top-k routing (Shazeer et al. 2017) through one gate per task; the gating noise comes from a given generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cirbench.diffusion.ldm_unet import CrossAttention, Downsample
from cirbench.diffusion.samplers import Generators, seeded_noise

NOISE_EPSILON = 1e-2
PROB_FLOOR = 1e-5


@dataclass(frozen=True)
class PromptConfig:
    embed_dim: int = 256
    depth: int = 2
    num_heads: int = 4
    experts: int = 7
    top_k: int = 3
    tasks: int = 21
    latent_channels: int = 4
    daclip_dim: int = 0  # width of the DA-CLIP degradation tokens (768); 0 = route on the tokens themselves
    attn_heads: int = 8
    attn_head_dim: int = 64


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    """Pre-norm transformer block (MHSA, then a 4x MLP) on [B, N, C] tokens."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, dim * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ExpertPrompts(nn.Module):
    """``experts`` prompt matrices; each token is multiplied by its top-k experts, weighted by their gate values.

    Gates: per task, a bias-free linear map to (clean logits | noise scales); logits + N(0,1) * (softplus + 0.01),
    softmax + 1e-5, top-k kept as they are (not renormalised), as the release does at train and test time alike.
    """

    def __init__(self, cfg: PromptConfig) -> None:
        super().__init__()
        self.top_k = cfg.top_k
        if cfg.daclip_dim:
            self.attn = CrossAttention(cfg.embed_dim, cfg.daclip_dim, cfg.attn_heads, cfg.attn_head_dim)
        self.prompt_param = nn.Parameter(torch.rand(cfg.experts, cfg.embed_dim, cfg.embed_dim) - 0.5)
        self.f_gate = nn.ModuleList(
            nn.Sequential(nn.Linear(cfg.embed_dim, 2 * cfg.experts, bias=False)) for _ in range(cfg.tasks)
        )
        for gate in self.f_gate:
            nn.init.zeros_(gate[0].weight)

    def route(self, x: torch.Tensor, task_ids: list[int], generator: Generators) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k gate values and expert indices per token, [B, N, k] each."""
        logits = torch.stack([self.f_gate[t](x[i]) for i, t in enumerate(task_ids)])
        clean, raw_std = logits.chunk(2, dim=-1)
        noisy = clean + seeded_noise(clean, generator) * (F.softplus(raw_std) + NOISE_EPSILON)
        probs = torch.softmax(noisy, dim=-1) + PROB_FLOOR
        return probs.topk(self.top_k, dim=-1)

    def forward(self, x: torch.Tensor, task_ids: list[int], degradation: torch.Tensor | None = None,
                generator: Generators = None) -> torch.Tensor:  # fmt: skip
        router_input = x if degradation is None else self.attn(x, degradation.to(x.dtype))
        gates, choice = self.route(router_input, task_ids, generator)
        experts = torch.einsum("bnc,ecd->bned", x, self.prompt_param.to(x.dtype))  # every expert on every token
        picked = torch.gather(experts, 2, choice[..., None].expand(*choice.shape, x.shape[-1]))
        return (picked * gates[..., None].to(x.dtype)).sum(dim=2)


class MoEPromptModule(nn.Module):
    """z_lq [B,4,h,w] -> prompt maps {'h': [B,C,h,w], 'h/2': ..., 'h/4': ..., 'h/8': ...} for the U-Net's SPADE layers."""

    def __init__(self, cfg: PromptConfig, daclip: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        if daclip is not None:
            self.DACLIP_model = daclip
        for stage in range(1, 5):
            setattr(self, f"norm{stage}", nn.LayerNorm(cfg.embed_dim))
            setattr(self, f"Prompt_model{stage}", ExpertPrompts(cfg))
            setattr(self, f"blocks{stage}", nn.Sequential(*[ViTBlock(cfg.embed_dim, cfg.num_heads) for _ in range(cfg.depth)]))
        self.conv_first = nn.Sequential(nn.Conv2d(cfg.latent_channels, cfg.embed_dim, 3, padding=1))
        for stage in range(1, 4):
            setattr(self, f"downsample{stage}", Downsample(cfg.embed_dim))

    def forward(self, z_lq: torch.Tensor, task_ids: list[int], degradation: torch.Tensor | None = None,
                generator: Generators = None) -> dict[str, torch.Tensor]:  # fmt: skip
        """Per stage: ViT blocks, LayerNorm, experts; the next stage starts from the normalised tokens.

        As in the release, the last stage's experts see the tokens before ``norm4`` (its output is unused).
        """
        if (degradation is None) != (self.cfg.daclip_dim == 0):
            raise ValueError("DA-CLIP degradation tokens are needed exactly when the module was built with DA-CLIP")
        maps, grid = {}, self.conv_first(z_lq)
        for stage in range(1, 5):
            b, c, h, w = grid.shape
            tokens = getattr(self, f"blocks{stage}")(grid.flatten(2).transpose(1, 2))
            normed = getattr(self, f"norm{stage}")(tokens)
            experts_in = normed if stage < 4 else tokens
            prompt = getattr(self, f"Prompt_model{stage}")(experts_in, task_ids, degradation, generator)
            maps[str(w)] = prompt.transpose(1, 2).reshape(b, c, h, w)
            if stage < 4:
                grid = getattr(self, f"downsample{stage}")(normed.transpose(1, 2).reshape(b, c, h, w))
        return maps
