"""Reusable network building blocks for restoration models (Restormer, HAT-style window attention, prompts).

Parameter names follow the families they come from, so checkpoints of derived models load without renaming.
"""
