"""Training losses for `cirbench train`: a registry of loss factories, one file per loss.

A loss module registers ``factory(**options) -> loss_fn(output, target)``; options come from the config's [loss] table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from cirbench.errors import ConfigError
from cirbench.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossFactory = Callable[..., LossFn]

LOSSES: Registry[LossFactory] = Registry("loss", package="cirbench.training.losses", group="cirbench.losses")


def register_loss(name: str) -> Callable[[LossFactory], LossFactory]:
    """Decorator for a factory ``(**options) -> loss_fn``."""
    return LOSSES.register(name)


def resolve_loss(name: str, options: dict[str, Any] | None = None) -> LossFn:
    """A loss by registered name (l1, mse, charbonnier, ...) or as 'package.module:function' (the loss itself)."""
    options = dict(options or {})
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            loss = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"loss '{name}' cannot be imported ({exc})") from exc
        if not callable(loss):
            raise ConfigError(f"loss '{name}' is not callable")
        return loss
    if name not in LOSSES:
        raise ConfigError(f"unknown loss '{name}' (known: {', '.join(LOSSES.names())}, or 'package.module:function')")
    try:
        return LOSSES.get(name)(**options)
    except TypeError as exc:
        raise ConfigError(f"loss '{name}' does not take these [loss] options {sorted(options)}: {exc}") from exc
