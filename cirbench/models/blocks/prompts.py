"""Prompt blocks: a spatially varying prompt mixed per pixel from a learned bank (PromptCIR's dynamic prompt).

Keys follow PromptCIR's ``ActiveBlock_Prompt_Basis``: ``prompt``, ``basis_mlp.fc1/fc2``, ``task_mlp.fc1/fc2``, ``conv3x3``.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenMLP(nn.Module):
    """Per-pixel two-layer MLP on channel-last features: Linear, GELU, Linear (keys ``fc1``, ``fc2``)."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class BasisPrompt(nn.Module):
    """Content- and distortion-aware prompt map from [B,C,H,W] features.

    Each pixel gets softmax weights over ``num_basis`` basis vectors and over ``num_task`` groups from two MLPs;
    the prompt there is sum_t task_t * sum_n basis_n * bank[t, n] (a vector of ``prompt_dim``), followed by a
    3x3 conv. Output: [B, prompt_dim, H, W]. The bank has shape [1, num_task, num_basis, prompt_dim, 1, 1].
    """

    def __init__(self, dim: int, num_task: int, num_basis: int, prompt_dim: int) -> None:
        super().__init__()
        self.basis_mlp = TokenMLP(dim, num_basis, num_basis)
        self.task_mlp = TokenMLP(dim, num_task, num_task)
        self.prompt = nn.Parameter(torch.rand(1, num_task, num_basis, prompt_dim, 1, 1))
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.permute(0, 2, 3, 1)
        basis = self.basis_mlp(tokens).softmax(dim=-1)  # B,H,W,N
        task = self.task_mlp(tokens).softmax(dim=-1)  # B,H,W,T
        weights = (task.unsqueeze(-1) * basis.unsqueeze(-2)).flatten(-2)  # B,H,W,T*N
        bank = self.prompt.flatten(3).flatten(1, 2).squeeze(0)  # T*N, E
        prompt_map = (weights @ bank.to(weights.dtype)).permute(0, 3, 1, 2)
        return self.conv3x3(prompt_map)
