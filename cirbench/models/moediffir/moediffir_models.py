"""The MoE-DiffIR baselines: ``moe-diffir`` (DA-CLIP + V2T) and ``moe-diffir-prompt`` (MoE-Prompt only), oracle.

Both run the release's sampler on the official checkpoints with Decoder_Finetuned.ckpt, loaded strictly.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import torch

from cirbench.diffusion.kl_autoencoder import KLAutoencoder
from cirbench.diffusion.samplers import SamplerSettings
from cirbench.models import ModelError, ModelInfo, register_model
from cirbench.models.moediffir import official
from cirbench.models.moediffir.network import MoEDiffIRConfig, MoEDiffIRNet, official_config, tiny_config
from cirbench.models.moediffir.pipeline import InferenceSettings, MoEDiffIRPipeline
from cirbench.weights.manager import WeightsUnavailable, ensure_weight

if TYPE_CHECKING:
    from cirbench.tasks import Task

CONFIGS = {"official": official_config, "tiny": tiny_config}


def parse_task_map(text: str) -> dict[str, str]:
    """'JPEG_5:JPEG_10,AVC_37:HEVC_37' -> {'JPEG_5': 'JPEG_10', 'AVC_37': 'HEVC_37'}."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = item.partition(":")
        if not sep or not source.strip() or not target.strip():
            raise ModelError(f"task_map entry '{item}' is not SOURCE:TARGET (e.g. JPEG_5:JPEG_10)")
        mapping[source.strip()] = target.strip()
    return mapping


def _moe_ids() -> dict[str, int]:
    from cirbench.tasks import load_taskset

    return {task.name: task.id for task in load_taskset("moe-diffir-21").tasks if task.id is not None}


class MoEDiffIRModel:
    """RestorationModel: tells the router the MoE-DiffIR task id of each batch's task (an oracle input)."""

    def __init__(self, info: ModelInfo, pipeline: MoEDiffIRPipeline, task_map: dict[str, str]) -> None:
        self.info, self.pipeline, self.task_map = info, pipeline, task_map
        self.ids = _moe_ids()
        unknown = sorted(t for t in task_map.values() if t not in self.ids)
        if unknown:
            raise ModelError(f"task_map targets {', '.join(unknown)} have no MoE-DiffIR id (known: {', '.join(self.ids)})")

    def task_id(self, task: Task | None) -> int:
        """The task set's MoE-DiffIR id, or the id of the task ``task_map`` names for it; unseen tasks refuse."""
        if task is None:
            raise ModelError(f"{self.info.name} is an oracle model: it needs the task label of every image")
        if task.name in self.task_map:
            return self.ids[self.task_map[task.name]]
        if task.id is None:
            raise ModelError(
                f"task {task.name} has no MoE-DiffIR task id (the model was trained on 21 tasks only); map it to "
                f"one, e.g. -O task_map={task.name}:JPEG_10"
            )
        return task.id

    def restore(self, lq: torch.Tensor, task: Task | None) -> torch.Tensor:
        return self.pipeline.restore(lq, [self.task_id(task)] * lq.shape[0])

    def to(self, device: str) -> MoEDiffIRModel:
        self.pipeline.to(device)
        return self


def _weights_path(explicit: str | None, filename: str) -> str | None:
    if explicit:
        return explicit
    try:
        return str(ensure_weight(filename, download=False))
    except WeightsUnavailable:
        return None


def _module(factory, path: str | None, layout, device: str = "cpu") -> tuple[torch.nn.Module, dict | None]:
    """``factory()`` with the file's weights (built on the meta device, the file's tensors adopted), or as initialised
    (on ``device``)."""
    if path is None:
        with torch.device(device):
            return factory().eval(), None
    with torch.device("meta"):
        module = factory()
    report = official.load_into(module, path, layout(module), assign=True)
    return module.eval(), report.as_record()


def build_networks(cfg: MoEDiffIRConfig, main: str | None, decoder: str | None, seed: int, device: str = "cpu"):
    """Networks with the official weights (strictly checked), or seeded random weights (made on ``device``) when no
    file is given; the empty-prompt context for the MoE-Prompt-only variant; the load reports."""
    torch.manual_seed(seed)
    net, net_report = _module(lambda: MoEDiffIRNet(cfg), main, lambda m: official.main_layout(cfg, m), device)
    vae, vae_report = _module(lambda: KLAutoencoder(cfg.fusion_vae), decoder,
                              lambda m: official.decoder_layout(cfg, m), device)  # fmt: skip
    context = None
    if cfg.variant == "prompt":
        context = net.cond_stage_model.empty_context()
        del net.cond_stage_model  # the ViT-H text tower is only needed for this one embedding
    return net, vae, context, [r for r in (net_report, vae_report) if r is not None]


def _missing_weights(name: str, missing: list[str]) -> str:
    """Every missing file at once, why nothing downloads them, what still works, and how to use a copy."""
    return (
        f"model '{name}' needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not in the weights "
        "cache. The MoE-DiffIR release's download links are dead (its issues #15, #16), so nothing can fetch them. "
        f"If you hold a copy: `cirbench weights import FILE` (checked against the official key layout), or pass it "
        f"directly (--checkpoint {missing[0] if missing[0] != official.DECODER_FILE else 'MAIN.ckpt'}, "
        f"-O decoder={official.DECODER_FILE}); `cirbench weights convert FILE` turns it into tensors-only safetensors. "
        f"What works without them: `-O config=tiny` runs the same pipeline on seeded random weights (not a result)"
    )


def create(variant: str, checkpoint: str | None, device: str, decoder: str, steps: int, seed: int, precision: str,
           sampler: str, task_map: str, config: str) -> MoEDiffIRModel:  # fmt: skip
    name = "moe-diffir" if variant == "daclip" else "moe-diffir-prompt"
    if config not in CONFIGS:
        raise ModelError(f"config must be one of {', '.join(CONFIGS)}, got '{config}'")
    if precision == "auto":  # the release's default is `--precision autocast`: fp16 autocast on CUDA
        precision = "fp16" if device.startswith("cuda") else "fp32"
    if precision != "fp32" and not device.startswith("cuda"):
        raise ModelError(f"precision {precision} runs under CUDA autocast: use --device cuda (or precision=fp32)")
    cfg = CONFIGS[config](variant)
    main_file = official.DACLIP_FILE if variant == "daclip" else official.PROMPT_FILE
    main = _weights_path(checkpoint, main_file) if config == "official" else checkpoint
    dec = _weights_path(decoder, official.DECODER_FILE) if config == "official" else (decoder or None)
    if config == "official" and (main is None or dec is None):
        missing = [f for f, path in ((main_file, main), (official.DECODER_FILE, dec)) if path is None]
        raise ModelError(_missing_weights(name, missing))
    settings = InferenceSettings(SamplerSettings(method=sampler, steps=steps), seed=seed, precision=precision)
    net, vae, context, reports = build_networks(cfg, main, dec, seed)
    pipeline = MoEDiffIRPipeline(net, vae, settings, context).to(device)
    trained = main is not None and dec is not None
    info = ModelInfo(
        name=name,
        version="+".join(r["sha256"][:12] for r in reports) or f"random-{config}-seed{seed}",
        needs_task_label=True,
        size_multiple=64,
        tile_size=cfg.image_size,
        description=f"MoE-DiffIR ({'DA-CLIP + V2T' if variant == 'daclip' else 'MoE-Prompt only'}), {config} "
                    f"configuration, {sampler.upper()} {steps} steps, seed {seed}, {precision}; oracle task id",
        label="MoE-DiffIR, the authors' weights (no published hash)" if trained else
              f"MoE-DiffIR architecture with seeded random weights ({config}): not a result",
        not_a_result="" if trained and config == "official" else
                     "seeded random weights" + ("" if config == "official" else f" ({config} configuration)")
                     if not trained else f"{config} configuration",
        details={"sampler": asdict(settings.sampler), "seed": seed, "precision": precision, "fusion_weight": 1.0,
                 "task_map": parse_task_map(task_map), "weights": reports, "config": config},
    )  # fmt: skip
    return MoEDiffIRModel(info, pipeline, parse_task_map(task_map))


@register_model("moe-diffir", mode="oracle", weights=(official.DACLIP_FILE, official.DECODER_FILE))
def create_moe_diffir(checkpoint: str | None = None, device: str = "cpu", decoder: str = "", steps: int = 200,
                      seed: int = 42, precision: str = "auto", sampler: str = "ddpm", task_map: str = "",
                      config: str = "official") -> MoEDiffIRModel:  # fmt: skip
    """MoE-DiffIR with the DA-CLIP prior and V2T adapter: ``checkpoint`` MoE-DiffIR_DACLIP.ckpt (or its
    converted .safetensors), ``decoder`` Decoder_Finetuned.ckpt; both default to the weights cache."""
    return create("daclip", checkpoint, device, decoder, steps, seed, precision, sampler, task_map, config)


@register_model("moe-diffir-prompt", mode="oracle", weights=(official.PROMPT_FILE, official.DECODER_FILE))
def create_moe_diffir_prompt(checkpoint: str | None = None, device: str = "cpu", decoder: str = "", steps: int = 200,
                             seed: int = 42, precision: str = "auto", sampler: str = "ddpm", task_map: str = "",
                             config: str = "official") -> MoEDiffIRModel:  # fmt: skip
    """MoE-DiffIR with MoE-Prompt only (the release's test default N7_K3.ckpt) and the empty text prompt."""
    return create("prompt", checkpoint, device, decoder, steps, seed, precision, sampler, task_map, config)

