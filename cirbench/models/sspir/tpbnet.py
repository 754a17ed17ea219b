"""TPBNet, SSP-IR's semantic projector: CLIP ViT-L/14's last encoder layer (before post-layernorm, CLS dropped)
through (Linear, LayerNorm, LeakyReLU) x 2 and Linear to 512-d image tokens for the image cross-attentions.
"""

from __future__ import annotations

import torch
from torch import nn


class TPBNet(nn.Module):
    """``visual_projection.{0..6}``: the ten tensors of the release's ``refine/refine.pt``."""

    def __init__(self, clip_dim: int = 1024, out_dim: int = 512, layers: int = 2) -> None:
        super().__init__()
        stack: list[nn.Module] = []
        for _ in range(layers):
            stack += [nn.Linear(clip_dim, clip_dim), nn.LayerNorm(clip_dim), nn.LeakyReLU()]
        self.visual_projection = nn.Sequential(*stack, nn.Linear(clip_dim, out_dim))

    def forward(self, hidden_states: tuple[torch.Tensor, ...], layer: int = -1) -> torch.Tensor:
        """``hidden_states`` as CLIPVisionModel(output_hidden_states=True) returns them; layer -1 is layer 24 there."""
        return self.visual_projection(hidden_states[layer][:, 1:, :])
