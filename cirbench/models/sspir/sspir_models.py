"""The registered ``sspir`` model (blind): a release or ``cirbench train sspir`` checkpoint-N folder with SD-1.5
and CLIP ViT-L/14, run with the release's inference; ``config=tiny`` runs seeded random tiny networks (not a result).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cirbench.models import ModelError, ModelInfo, register_model
from cirbench.models.sspir import sspir_checkpoint
from cirbench.models.sspir import sspir_towers as towers

if TYPE_CHECKING:
    from cirbench.tasks import Task

LAYOUTS = (sspir_checkpoint.UNET_LAYOUT, sspir_checkpoint.CONTROLNET_LAYOUT, sspir_checkpoint.REFINE_LAYOUT)
TRAIN_HINT = ("SSP-IR publishes no weights: train them with `cirbench train sspir --data BUILT_DATASET --out "
              "runs/sspir` (see the README), then pass -O checkpoint=runs/sspir/checkpoint-N")  # fmt: skip


def _status() -> str:
    missing = towers.missing_sd15("", "")
    return "no weights published (train: `cirbench train sspir`); " + (
        f"missing: {', '.join(missing)}" if missing else "SD-1.5 and CLIP-L/14 installed"
    )


class SSPIRModel:
    """RestorationModel around an SSPIRPipeline; captions (if any) are looked up by the batch's image stems."""

    def __init__(self, info: ModelInfo, pipeline, captions: dict[str, str] | None) -> None:
        self.info, self.pipeline, self.captions = info, pipeline, captions
        self.stems: list[str] = []

    def on_batch(self, stems: list[str]) -> None:
        """Called by `evaluate` before each batch: which images the next ``restore`` receives."""
        self.stems = list(stems)

    def prompts(self, count: int) -> list[str]:
        if not self.captions:
            return [""] * count
        if len(self.stems) != count:
            raise ModelError("captions need the image names: call on_batch(stems) before restore")
        missing = [s for s in self.stems if s not in self.captions]
        if missing:
            raise ModelError(f"the captions folder has no {missing[0]}.txt (every image needs one)")
        return [self.captions[s] for s in self.stems]

    def restore(self, lq: torch.Tensor, task: Task | None) -> torch.Tensor:
        return self.pipeline(lq, self.prompts(lq.shape[0]))

    def to(self, device: str) -> SSPIRModel:
        self.pipeline.to(device)
        return self


def _parts(checkpoint: str | None, sd15: str, clip: str, config: str, seed: int):
    from cirbench.models.sspir.sspir_checkpoint import load_checkpoint
    from cirbench.models.sspir.sspir_tiny import tiny_parts

    if config == "tiny":
        nets, parts, vision = tiny_parts(seed)
        if checkpoint:
            nets = load_checkpoint(checkpoint)
        return nets, parts, vision
    if config != "official":
        raise ModelError(f"config must be official or tiny, got '{config}'")
    missing = towers.missing_sd15(sd15, clip)
    if not checkpoint or missing:
        need = ([] if checkpoint else ["a checkpoint-N folder (-O checkpoint=DIR)"]) + missing
        raise ModelError(f"model 'sspir' needs {', '.join(need)}. " + ("" if checkpoint else TRAIN_HINT + ". ") +
                         (f"Get the SD-1.5 / CLIP files with `cirbench weights download {' '.join(missing)}`, or "
                          "pass -O sd15=DIR / -O clip=DIR (diffusers / transformers folders). " if missing else "") +
                         "Without any weights: -O config=tiny (seeded random, not a result)")  # fmt: skip
    return load_checkpoint(checkpoint), towers.load_sd15(sd15), towers.load_vision_tower(clip)


@register_model("sspir", mode="blind", weights_status=_status, weights=(towers.VAE_FILE, towers.TEXT_FILE, towers.CLIP_FILE))
def create_sspir(checkpoint: str | None = None, device: str = "cpu", sd15: str = "", clip: str = "",
                 captions: str = "", negative_prompt: str = "", steps: int = 50, guidance: float = 7.5,
                 conditioning_scale: float = 1.0, seed: int = 0, clip_norm: str = "train", colour_fix: str = "adain",
                 latent_tile: int = 96, latent_overlap: int = 4, vae_tile: int = 1024, precision: str = "auto",
                 config: str = "official") -> SSPIRModel:  # fmt: skip
    """SSP-IR (TCSVT 2025): SD-1.5 with semantic (CLIP -> TPBNet) and structure (ControlNet) priors; DDPM 50 steps
    from the noised LQ latent, guidance 7.5 (skipped when prompt and negative prompt are equal), AdaIN colour fix."""
    towers.requires_extra("model 'sspir'")
    from cirbench.models.sspir.sspir_pipeline import SSPIRPipeline, SSPIRSettings
    from cirbench.models.sspir.sspir_prompts import read_captions

    if precision == "auto":
        precision = "fp16" if device.startswith("cuda") else "fp32"
    settings = SSPIRSettings(steps=steps, guidance=guidance, conditioning_scale=conditioning_scale, seed=seed,
                             clip_norm=clip_norm, colour=colour_fix, latent_tile=latent_tile,
                             latent_overlap=latent_overlap, vae_tile=vae_tile, precision=precision,
                             negative_prompt=negative_prompt)  # fmt: skip
    caption_map = read_captions(captions) if captions else None
    nets, parts, vision = _parts(checkpoint, sd15, clip, config, seed)
    pipeline = SSPIRPipeline(nets, parts, vision, settings).to(device)
    trained = nets.record.get("checkpoint") is not None
    digest = "+".join(v[:12] for v in nets.record.get("sha256", {}).values())
    info = ModelInfo(
        name="sspir", version=digest or f"random-{config}-seed{seed}", needs_task_label=False, size_multiple=8,
        description=f"SSP-IR, {config} configuration, DDPM {steps} steps, guidance {guidance}, seed {seed}, "
                    f"{precision}, colour fix {colour_fix}, prompts {'from ' + captions if captions else 'empty'}",
        label="SSP-IR, trained checkpoint" if trained else f"SSP-IR architecture with seeded random weights ({config})",
        not_a_result="" if trained and config == "official" else
                     f"{config} configuration" if trained else "seeded random weights" +
                     ("" if config == "official" else f" ({config} configuration)"),
        details={**pipeline.describe(), "weights": nets.record, "captions": captions or None, "config": config},
    )  # fmt: skip
    return SSPIRModel(info, pipeline, caption_map)


def _train(*args, **kwargs):
    from cirbench.models.sspir.sspir_training import train_sspir

    return train_sspir(*args, **kwargs)


create_sspir.trainer = _train  # `cirbench train sspir` runs SSP-IR's own objective and saving
create_sspir.train_recipe = Path(__file__).resolve().parent / "sspir.train.toml"  # the release's hyper-parameters
