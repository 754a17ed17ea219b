"""MoE-DiffIR's module tree under the official state-dict prefixes, its official and tiny configurations.

``model.diffusion_model`` (U-Net + SPADE), ``first_stage_model`` (VAE), ``cond_stage_model`` (V2T or ViT-H text),
``structcond_stage_model`` (MoE-Prompt, with DA-CLIP), ``transformer_encoder/decoder`` (Enhancer, DA-CLIP variant).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from cirbench.diffusion.kl_autoencoder import FUSION_AUTOENCODER, SD_AUTOENCODER, AutoencoderConfig, KLAutoencoder
from cirbench.diffusion.ldm_unet import MOEDIFFIR_UNET, SD2_UNET, LDMUNet, UNetConfig
from cirbench.models.moediffir.clip_towers import (
    VIT_B32,
    VIT_B32_TEXT,
    VIT_H14_TEXT,
    DaCLIP,
    ResNetConfig,
    TextConfig,
    VisionConfig,
)
from cirbench.models.moediffir.conditioning import (
    EmptyPromptEmbedder,
    V2TAdapter,
    V2TConfig,
    enhancer_decoder,
    enhancer_encoder,
)
from cirbench.models.moediffir.routing import MoEPromptModule, PromptConfig

VARIANTS = ("daclip", "prompt")


@dataclass(frozen=True)
class MoEDiffIRConfig:
    variant: str  # "daclip": DA-CLIP prior + V2T context (MoE-DiffIR_DACLIP.ckpt); "prompt": MoE-Prompt only (N7_K3.ckpt)
    unet: UNetConfig = MOEDIFFIR_UNET
    vae: AutoencoderConfig = SD_AUTOENCODER
    fusion_vae: AutoencoderConfig = FUSION_AUTOENCODER
    prompt: PromptConfig = PromptConfig()
    text: TextConfig = VIT_H14_TEXT
    vision: VisionConfig = VIT_B32
    daclip_text: TextConfig = VIT_B32_TEXT
    v2t: V2TConfig = V2TConfig()
    enhancer_dim: int = 256
    scale_factor: float = 0.18215
    image_size: int = 256  # the release's input size (its prompt module hard-codes the 32/16/8/4 grids)
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown MoE-DiffIR variant '{self.variant}' (known: {', '.join(VARIANTS)})")


def official_config(variant: str) -> MoEDiffIRConfig:
    prompt = PromptConfig(daclip_dim=VIT_B32.width if variant == "daclip" else 0)
    return MoEDiffIRConfig(variant=variant, prompt=prompt)


def tiny_config(variant: str) -> MoEDiffIRConfig:
    """Same key patterns, a few thousand times smaller: 64x64 images, 8x8 latents (for tests and CPU benchmarks)."""
    vision = VisionConfig(width=32, layers=1, heads=2, patch=8, image=32, output_dim=16)
    return MoEDiffIRConfig(
        variant=variant,
        unet=UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(1, 2),
                        num_head_channels=16, context_dim=32, spade_channels=32, spade_hidden=16, groups=8),
        vae=AutoencoderConfig(ch=16, ch_mult=(1, 1, 2, 2), num_res_blocks=1, groups=8),
        fusion_vae=AutoencoderConfig(ch=16, ch_mult=(1, 1, 2, 2), num_res_blocks=1, groups=8, fusion_levels=(2, 1)),
        prompt=PromptConfig(embed_dim=32, depth=1, num_heads=2, daclip_dim=vision.width if variant == "daclip" else 0,
                            attn_heads=2, attn_head_dim=16),
        text=TextConfig(width=32, layers=2, heads=2, output_dim=32),
        vision=vision,
        daclip_text=TextConfig(width=16, layers=1, heads=2, output_dim=16),
        v2t=V2TConfig(ResNetConfig(layers=(1, 1, 1, 1), width=8, output_dim=16, heads=2, image=64),
                      context_dim=32, prompt_tokens=4, adapter_hidden=8),
        enhancer_dim=32,
        image_size=64,
    )  # fmt: skip


class _Wrapper(nn.Module):
    def __init__(self, unet: LDMUNet) -> None:
        super().__init__()
        self.diffusion_model = unet


class MoEDiffIRNet(nn.Module):
    """Everything the official MoE-DiffIR checkpoint of one variant holds, with its names."""

    def __init__(self, cfg: MoEDiffIRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = _Wrapper(LDMUNet(cfg.unet))
        self.first_stage_model = KLAutoencoder(cfg.vae)
        if cfg.variant == "daclip":
            self.cond_stage_model: nn.Module = V2TAdapter(cfg.v2t)
            self.structcond_stage_model = MoEPromptModule(cfg.prompt, DaCLIP(cfg.vision, cfg.daclip_text))
            self.transformer_encoder = enhancer_encoder(cfg.vae.embed_dim, cfg.enhancer_dim)
            self.transformer_decoder = enhancer_decoder(cfg.vae.embed_dim, cfg.enhancer_dim)
        else:
            self.cond_stage_model = EmptyPromptEmbedder(cfg.text)
            self.structcond_stage_model = MoEPromptModule(cfg.prompt)


class StableDiffusion2Net(nn.Module):
    """SD 2.1 (512-base): U-Net, VAE and the OpenCLIP ViT-H text tower, as in v2-1_512-ema-pruned.ckpt."""

    def __init__(self, unet: UNetConfig = SD2_UNET, vae: AutoencoderConfig = SD_AUTOENCODER,
                 text: TextConfig = VIT_H14_TEXT) -> None:  # fmt: skip
        super().__init__()
        self.model = _Wrapper(LDMUNet(unet))
        self.first_stage_model = KLAutoencoder(vae)
        self.cond_stage_model = EmptyPromptEmbedder(text)
