"""Diffusion code shared by several models and losses: noise schedules, respacing, samplers and U-Nets.

MoE-DiffIR (latent DDPM on SD 2.1's schedule) and DiffLoss (the ADM prior's linear schedule) both build on it.
"""
