"""The `identity` reference method: returns the decoded input unchanged ("no restoration").

Every leaderboard has its row: it scores the codec's own output against the ground truth.
"""

from __future__ import annotations

import torch

from cirbench.models import ModelInfo, register_model
from cirbench.tasks import Task

IDENTITY_INFO = ModelInfo(
    name="identity",
    version="1",
    needs_task_label=False,
    description="no restoration: the decoded LQ image is the output",
    label="no restoration (codec output)",
)


class IdentityModel:
    """restore(lq) = lq: weight-free, blind, any size."""

    info = IDENTITY_INFO

    def restore(self, lq: torch.Tensor, task: Task | None) -> torch.Tensor:
        return lq

    def to(self, device: str) -> IdentityModel:
        return self


@register_model("identity", mode="blind")
def create_identity(checkpoint: str | None = None, device: str = "cpu") -> IdentityModel:
    """No restoration: the codec output itself, the row every Δ is measured against."""
    if checkpoint is not None:
        from cirbench.models import ModelError

        raise ModelError("model 'identity' takes no checkpoint")
    return IdentityModel()
