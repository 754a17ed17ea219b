"""Pixel losses between a restored batch and its ground truth: L1, MSE and Charbonnier.

Each is registered by name for the ``loss`` key of a training config.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cirbench.training.losses import LossFn, register_loss


@register_loss("l1")
def l1() -> LossFn:
    return F.l1_loss


@register_loss("mse")
def mse() -> LossFn:
    return F.mse_loss


@register_loss("charbonnier")
def charbonnier(eps: float = 1e-3) -> LossFn:
    """sqrt((x - y)^2 + eps^2), averaged: a smooth L1."""

    def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((output - target).square() + eps * eps).mean()

    return loss
