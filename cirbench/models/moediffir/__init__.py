"""MoE-DiffIR (Ren et al., ECCV 2024) written for cirbench: networks, official-checkpoint loading, inference.

The registered models (``moe-diffir``, ``moe-diffir-prompt``) live in ``cirbench/models/moe_diffir.py``.
"""
