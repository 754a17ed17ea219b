"""PromptCIR, a bundled baseline: its network (``promptcir_net``) and its registered models (``promptcir_models``).

Importing the package registers ``promptcir``, ``promptcir-s`` and ``promptcir-s-diffloss``.
"""

from cirbench.models.promptcir.promptcir_models import (
    DIFFLOSS_RECIPE,
    DIFFLOSS_WEIGHTS,
    OFFICIAL_WEIGHTS,
    PACKAGED_DIR,
    SMALL_RECIPE,
    SMALL_WEIGHTS,
    PromptCIRModel,
    WeightsNotShipped,
    create_promptcir,
    create_promptcir_small,
    create_promptcir_small_diffloss,
    load_promptcir_weights,
    packaged_small_weights,
)
from cirbench.models.promptcir.promptcir_net import OFFICIAL_CONFIG, SMALL_CONFIG, PromptCIRConfig, PromptCIRNet

__all__ = [
    "DIFFLOSS_RECIPE",
    "DIFFLOSS_WEIGHTS",
    "OFFICIAL_CONFIG",
    "OFFICIAL_WEIGHTS",
    "PACKAGED_DIR",
    "SMALL_CONFIG",
    "SMALL_RECIPE",
    "SMALL_WEIGHTS",
    "PromptCIRConfig",
    "PromptCIRModel",
    "PromptCIRNet",
    "WeightsNotShipped",
    "create_promptcir",
    "create_promptcir_small",
    "create_promptcir_small_diffloss",
    "load_promptcir_weights",
    "packaged_small_weights",
]
