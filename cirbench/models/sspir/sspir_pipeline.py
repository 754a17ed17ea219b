"""SSP-IR inference: DDPM on SD-1.5's schedule from the LQ latent noised to t=999, ControlNet + U-Net per step,
classifier-free guidance (skipped when it cannot change anything), Gaussian-weighted latent tiles, tiled VAE.
"""

from __future__ import annotations

import zlib
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch

from cirbench.models import ModelError
from cirbench.models.sspir.colour_fix import METHODS, colour_fix
from cirbench.models.sspir.sspir_prompts import CLIP_NORMS, clip_input, encode_ids, negative_ids, prompt_ids


@dataclass(frozen=True)
class SSPIRSettings:
    steps: int = 50  # test.sh
    guidance: float = 7.5  # test.sh and the pipeline default
    conditioning_scale: float = 1.0
    start_t: int = 999  # the LQ latent is noised to this step ("start_point lr")
    seed: int = 0  # per image: seed + crc32 of its 8-bit LQ, so batching and order change nothing
    clip_norm: str = "train"  # or "release-test"
    colour: str = "adain"  # SeeSR's default align_method
    latent_tile: int = 96  # SeeSR's defaults (latents); the release's tiled branch crashes, ours blends
    latent_overlap: int = 4
    vae_tile: int = 1024  # pixels: larger images go through the VAE in tiles
    precision: str = "fp32"
    negative_prompt: str = ""  # the pipeline's default

    def __post_init__(self) -> None:
        if self.steps < 1 or not 0 < self.start_t < 1000:
            raise ModelError(f"steps must be >= 1 and start_t in 1..999 (got {self.steps}, {self.start_t})")
        if self.clip_norm not in CLIP_NORMS:
            raise ModelError(f"clip_norm must be one of {', '.join(CLIP_NORMS)}, got '{self.clip_norm}'")
        if self.colour not in METHODS:
            raise ModelError(f"colour_fix must be one of {', '.join(METHODS)}, got '{self.colour}'")
        if self.latent_tile < 8 or not 0 <= self.latent_overlap < self.latent_tile or self.vae_tile < 64:
            raise ModelError("latent_tile >= 8, 0 <= latent_overlap < latent_tile and vae_tile >= 64 are required")
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ModelError(f"precision must be fp32, fp16 or bf16, got '{self.precision}'")


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


def gaussian_weights(h: int, w: int, device: torch.device, var: float = 0.01) -> torch.Tensor:
    """The release's tile weights: a Gaussian of variance 0.01 in tile-relative coordinates."""

    def axis(n: int) -> torch.Tensor:
        x = (torch.arange(n, device=device, dtype=torch.float32) - (n - 1) / 2) / n
        return torch.exp(-(x**2) / (2 * var))

    return axis(h)[:, None] * axis(w)[None, :]


def image_seeds(lq: torch.Tensor, seed: int) -> list[int]:
    """One seed per image from its 8-bit content: the same image draws the same noise in any batch."""
    q = (lq.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return [(seed + zlib.crc32(q[i].numpy().tobytes())) % 2**63 for i in range(q.shape[0])]


class SSPIRPipeline:
    """All networks of SSP-IR; ``__call__(lq, prompts)`` restores a batch of LQ images in [0, 1]."""

    def __init__(self, nets, towers: dict, vision: torch.nn.Module, settings: SSPIRSettings) -> None:
        from diffusers import DDPMScheduler

        self.unet, self.controlnet, self.refine = nets.unet, nets.controlnet, nets.refine
        self.vae, self.text_encoder, self.tokenizer = towers["vae"], towers["text_encoder"], towers["tokenizer"]
        self.scaling, self.vision, self.settings = towers["scaling_factor"], vision, settings
        self.scheduler = DDPMScheduler.from_config(towers["scheduler"])
        self.calls = {"unet": 0, "controlnet": 0}

    def modules(self) -> list[torch.nn.Module]:
        return [self.unet, self.controlnet, self.refine, self.vae, self.text_encoder, self.vision]

    def to(self, device: str) -> SSPIRPipeline:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.settings.precision]
        for module in self.modules():  # nn.Module.to: diffusers' own .to warns about float32 modules
            torch.nn.Module.to(module, device=device, dtype=dtype)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Prompt embeddings, and the negative ones, or None when they are the same tokens (guidance is a no-op)."""
        ids = prompt_ids(self.tokenizer, prompts)
        negative = negative_ids(self.tokenizer, [self.settings.negative_prompt] * len(prompts), ids.shape[1])
        cond = encode_ids(self.text_encoder, ids).to(self.dtype)
        if torch.equal(ids, negative) or self.settings.guidance == 1.0:
            return cond, None
        return cond, encode_ids(self.text_encoder, negative).to(self.dtype)

    def image_tokens(self, lq: torch.Tensor) -> torch.Tensor:
        pixels = clip_input(lq.float(), self.settings.clip_norm).to(self.dtype)
        hidden = self.vision(pixel_values=pixels, output_hidden_states=True).hidden_states
        return self.refine(hidden)

    def _eps(self, latents, t, text, lq, image) -> torch.Tensor:
        self.calls["controlnet"] += latents.shape[0]  # images through each network (guidance doubles them)
        self.calls["unet"] += latents.shape[0]
        _, down, mid = self.controlnet(latents, t, text, lq, image, self.settings.conditioning_scale)
        return self.unet(latents, t, text, down, mid, image)

    def _guided(self, latents, t, cond, uncond, lq, image) -> torch.Tensor:
        if uncond is None:
            return self._eps(latents, t, cond, lq, image)
        two = lambda x: torch.cat([x, x])  # noqa: E731
        eps_u, eps_c = self._eps(two(latents), t, torch.cat([uncond, cond]), two(lq), two(image)).chunk(2)
        return eps_u + self.settings.guidance * (eps_c - eps_u)

    def denoise(self, latents, t, cond, uncond, lq, image) -> torch.Tensor:
        """ε for the whole latent: one pass when it fits a tile, else Gaussian-blended tiles."""
        if max(latents.shape[-2:]) <= self.settings.latent_tile:
            return self._guided(latents, t, cond, uncond, lq, image)
        return self.tiled(latents, t, cond, uncond, lq, image)

    def tiled(self, latents, t, cond, uncond, lq, image) -> torch.Tensor:
        """Tiles of ``latent_tile`` latents overlapping by ``latent_overlap``, each with its LQ crop, blended."""
        s = self.settings
        h, w = latents.shape[-2:]
        th, tw = min(h, s.latent_tile), min(w, s.latent_tile)
        weight = gaussian_weights(th, tw, latents.device)
        total = torch.zeros_like(latents, dtype=torch.float32)
        norm = torch.zeros((h, w), device=latents.device)
        for y in tile_starts(h, s.latent_tile, s.latent_overlap):
            for x in tile_starts(w, s.latent_tile, s.latent_overlap):
                crop = lq[..., 8 * y : 8 * (y + th), 8 * x : 8 * (x + tw)]
                eps = self._guided(latents[..., y : y + th, x : x + tw], t, cond, uncond, crop, image)
                total[..., y : y + th, x : x + tw] += eps.float() * weight
                norm[y : y + th, x : x + tw] += weight
        return (total / norm).to(latents.dtype)

    def _vae_tiling(self, h: int, w: int) -> None:
        tile = self.settings.vae_tile
        self.vae.use_tiling = max(h, w) > tile
        self.vae.tile_sample_min_size, self.vae.tile_latent_min_size = tile, tile // 8

    def __call__(self, lq: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        if lq.shape[-1] % 8 or lq.shape[-2] % 8:
            raise ModelError(f"SSP-IR needs sides that are multiples of 8, got {list(lq.shape[-2:])}")
        s, device = self.settings, lq.device
        generators = [torch.Generator(device=device).manual_seed(v) for v in image_seeds(lq, s.seed)]
        autocast = torch.autocast(device.type, dtype=self.dtype) if self.dtype != torch.float32 else nullcontext()
        with torch.no_grad(), autocast:
            cond, uncond = self.text(prompts)
            image = self.image_tokens(lq)
            condition = lq.to(self.dtype)
            self._vae_tiling(*lq.shape[-2:])
            posterior = self.vae.encode((lq * 2 - 1).to(self.dtype)).latent_dist
            z = torch.cat([posterior.mean[i : i + 1] + posterior.std[i : i + 1] *
                           torch.randn(posterior.mean[i : i + 1].shape, generator=g, device=device, dtype=self.dtype)
                           for i, g in enumerate(generators)]) * self.scaling  # fmt: skip
            noise = torch.cat([torch.randn(z[:1].shape, generator=g, device=device, dtype=z.dtype) for g in generators])
            self.scheduler.set_timesteps(s.steps, device=device)
            latents = self.scheduler.add_noise(z, noise, torch.tensor([s.start_t], device=device))
            for t in self.scheduler.timesteps:
                if t > s.start_t:
                    continue
                eps = self.denoise(latents, t, cond, uncond, condition, image)
                latents = self.scheduler.step(eps, t, latents, generator=generators).prev_sample
            out = self.vae.decode(latents / self.scaling).sample
        out = (out.float() + 1) / 2
        return colour_fix(out, lq.float(), s.colour)

    def describe(self) -> dict:
        return {**asdict(self.settings), "scheduler": dict(self.scheduler.config),
                "guidance_skipped_when_prompt_equals_negative": True}
