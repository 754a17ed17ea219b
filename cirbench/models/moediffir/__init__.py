"""MoE-DiffIR (Ren et al., ECCV 2024), a bundled baseline: networks, official-checkpoint loading, inference.

Importing the package registers its models (``moe-diffir``, ``moe-diffir-prompt``, in ``moediffir_models``).
"""

from cirbench.models.moediffir import moediffir_models  # noqa: F401  (registers the models)
