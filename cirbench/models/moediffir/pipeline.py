"""MoE-DiffIR inference as the release runs it: fusion-VAE latent, prompts per step, ancestral DDPM, fusion decode.

Each image gets its own generator, seeded from ``seed`` and the image's bytes: it drives that image's posterior
sample, start noise, gating noise and DDPM noise, so a result does not depend on batching or on the other images.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from cirbench.diffusion.kl_autoencoder import KLAutoencoder
from cirbench.diffusion.samplers import SamplerSettings, keyed_generator, sample, seeded_noise
from cirbench.errors import ConfigError
from cirbench.models.moediffir.conditioning import resize_for_clip
from cirbench.models.moediffir.network import MoEDiffIRNet

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class InferenceSettings:
    sampler: SamplerSettings = SamplerSettings()
    seed: int = 42
    precision: str = "fp32"  # fp16 / bf16: autocast on CUDA (weights stay fp32)
    fusion_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")


def image_generators(images01: torch.Tensor, seed: int) -> list[torch.Generator]:
    """One CPU generator per image, seeded from ``seed`` and the image's 8-bit pixels."""
    pixels = (images01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return [keyed_generator(str(seed).encode() + image.tobytes()) for image in pixels]


class MoEDiffIRPipeline:
    """restore(lq in [0,1], MoE-DiffIR task ids) -> restored image in [0,1], same size (multiples of 64)."""

    def __init__(self, net: MoEDiffIRNet, vae: KLAutoencoder, settings: InferenceSettings,
                 empty_context: torch.Tensor | None = None) -> None:  # fmt: skip
        self.net, self.vae, self.settings = net, vae, settings
        self.empty_context = empty_context
        if net.cfg.variant == "prompt" and empty_context is None:
            raise ConfigError("the MoE-Prompt-only variant needs the empty-prompt context")

    def to(self, device: str) -> MoEDiffIRPipeline:
        self.net.to(device)
        self.vae.to(device)
        if self.empty_context is not None:
            self.empty_context = self.empty_context.to(device)
        return self

    def _context(self, lq: torch.Tensor, z_lq: torch.Tensor) -> torch.Tensor:
        """Cross-attention context: '' through ViT-H, or the V2T adapter on the Enhancer's restored LQ."""
        net = self.net
        if net.cfg.variant == "prompt":
            return self.empty_context.expand(lq.shape[0], -1, -1)  # type: ignore[union-attr]
        enhanced = net.transformer_decoder(net.transformer_encoder(z_lq)) + z_lq
        image = net.first_stage_model.decode(enhanced / net.cfg.scale_factor)  # not clamped, as in the release
        return net.cond_stage_model.context(resize_for_clip(image, net.cfg.v2t.resnet.image))

    def _degradation(self, lq: torch.Tensor) -> torch.Tensor | None:
        if self.net.cfg.variant != "daclip":
            return None
        daclip = self.net.structcond_stage_model.DACLIP_model
        return daclip.degradation_tokens(resize_for_clip(lq, daclip.visual_control.cfg.image))

    def _autocast(self, device: torch.device):
        dtype = PRECISIONS[self.settings.precision]
        if dtype is None:
            return nullcontext()
        if device.type != "cuda":
            raise ConfigError(f"precision {self.settings.precision} needs a CUDA device (this run is on {device.type})")
        return torch.autocast("cuda", dtype=dtype)

    @torch.no_grad()
    def restore(self, lq01: torch.Tensor, task_ids: list[int], progress: Callable[[int], None] | None = None) -> torch.Tensor:
        device = lq01.device
        generator = image_generators(lq01, self.settings.seed)
        lq = lq01.float() * 2 - 1
        with self._autocast(device):
            z, features = self.vae.sample(lq, generator)
            z_lq = z * self.net.cfg.scale_factor
            context, degradation = self._context(lq, z_lq), self._degradation(lq)
            prompts, unet = self.net.structcond_stage_model, self.net.model.diffusion_model

            def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                maps = prompts(z_lq, task_ids, degradation, generator)  # recomputed each step (fresh gate noise)
                return unet(x, t, context, maps)

            latent = sample(eps, seeded_noise(z_lq.float(), generator), self.settings.sampler, generator, progress)
            out = self.vae.decode(latent / self.net.cfg.scale_factor, features, self.settings.fusion_weight)
        return ((out.float().clamp(-1, 1) + 1) / 2).clamp(0, 1)
