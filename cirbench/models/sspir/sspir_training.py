"""``cirbench train sspir``: the release's objective (ε-MSE + 0.1 L1 + 0.01 FFT-L1 of the three ``to_rgbs`` outputs)
and recipe (image/pixel attentions, ControlNet and TPBNet trained; AdamW, constant lr), resumable exactly, saving the
release's ``checkpoint-N/{unet,controlnet,refine/refine.pt}`` layout.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cirbench.dataset.reader import BuiltDataset
from cirbench.errors import ConfigError
from cirbench.fileio import write_text_atomic, write_with_atomic
from cirbench.models import ModelError
from cirbench.models.sspir.sspir_checkpoint import load_weights_into, save_checkpoint
from cirbench.models.sspir.sspir_prompts import clip_input, encode_ids, prompt_ids, read_captions
from cirbench.training.config import TrainConfig
from cirbench.training.data import PairedCrops, split_pairs

RECIPE = Path(__file__).resolve().parent / "sspir.train.toml"
STATE, LATEST = "training_state.pt", "latest.json"
EventFn = Callable[[str, dict[str, Any]], None]


def fft_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 (mean) between the real and imaginary parts of both images' rfft2 (the release's FFTLoss)."""
    a, b = torch.fft.rfft2(pred.float()), torch.fft.rfft2(target.float())
    return F.l1_loss(torch.stack([a.real, a.imag], -1), torch.stack([b.real, b.imag], -1))


def structure_loss(rgbs: list[torch.Tensor], hr: torch.Tensor) -> torch.Tensor:
    """Σ over the three scales of 0.1 L1 + 0.01 FFT-L1 against the bilinearly downsampled target in [-1, 1]."""
    total = hr.new_zeros(())
    for rgb in rgbs:
        target = F.interpolate(hr * 2 - 1, size=rgb.shape[-2:], mode="bilinear", align_corners=False)
        total = total + 0.1 * F.l1_loss(rgb.float(), target) + 0.01 * fft_l1(rgb, target)
    return total


def trainable_parameters(pipeline) -> list[torch.nn.Parameter]:
    """The release's trainable set: the U-Net's image and pixel attentions, all of the ControlNet and TPBNet."""
    for module in pipeline.modules():
        module.requires_grad_(False)
    for name, module in pipeline.unet.named_modules():
        if name.endswith(("image_attentions", "pixel_attentions")):
            module.requires_grad_(True)
    pipeline.controlnet.requires_grad_(True)
    pipeline.refine.requires_grad_(True)
    return [p for m in (pipeline.unet, pipeline.controlnet, pipeline.refine) for p in m.parameters() if p.requires_grad]


class SSPIRTrainer:
    """One run in ``out``; ``run`` trains to ``config.steps`` optimizer steps (or ``stop_after``)."""

    def __init__(self, pipeline, data: BuiltDataset, tasks: list[str] | None, config: TrainConfig, out: Path,
                 device: str, options: dict[str, Any], on_event: EventFn | None) -> None:  # fmt: skip
        self.out = Path(out)
        self.null_text = float(options.get("null_text_ratio", 0.5))
        self.captions = read_captions(options["captions"]) if options.get("captions") else {}
        self.emit = on_event or (lambda kind, payload: None)
        if not 0 <= self.null_text <= 1:
            raise ConfigError("null_text_ratio must be in [0, 1]")
        self.setup_optimisation(pipeline, config, device, int(options.get("accumulate", 2)))
        split = split_pairs(data, tasks, 0, config.seed, config.crop_size)
        pairs = sorted(split.train, key=lambda pr: (pr.stem, pr.task))  # sorted pairing, shuffled sampling
        self.crops = PairedCrops(pairs, config.crop_size, config.seed, config.augment, 1 << 62)

    def setup_optimisation(self, pipeline, config: TrainConfig, device: str, accumulate: int) -> None:
        """Trainable set, AdamW, fp16 mixed precision on CUDA (frozen towers cast to fp16), loss history."""
        if accumulate < 1:
            raise ConfigError("accumulate must be >= 1")
        self.p, self.config, self.device, self.accumulate = pipeline, config, torch.device(device), accumulate
        self.params = trainable_parameters(pipeline)
        self.clipped = [p for m in (pipeline.unet, pipeline.controlnet) for p in m.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, betas=(config.beta1, config.beta2),
                                           weight_decay=config.weight_decay, eps=1e-8)  # fmt: skip
        fp16 = self.device.type == "cuda" and config.amp in ("auto", "fp16")
        self.amp = torch.float16 if fp16 else None
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None
        if self.amp:  # frozen towers in fp16, trained networks in fp32 (the release's mixed precision)
            for module in (pipeline.vae, pipeline.text_encoder, pipeline.vision):
                torch.nn.Module.to(module, dtype=torch.float16)
        self.losses: list[float] = []

    def batch(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        size = self.config.batch_size
        first = (step * self.accumulate + micro) * size
        lqs, hrs, prompts = [], [], []
        for index in range(first, first + size):
            lq, hr = self.crops[index]
            pair, _ = self.crops.pair_at(index)
            drop = np.random.default_rng([self.config.seed, index, 1]).random() < self.null_text
            prompts.append("" if drop or pair.stem not in self.captions else self.captions[pair.stem])
            lqs.append(lq)
            hrs.append(hr)
        return torch.stack(lqs).to(self.device), torch.stack(hrs).to(self.device), prompts

    def loss(self, lq: torch.Tensor, hr: torch.Tensor, prompts: list[str], generator: torch.Generator) -> torch.Tensor:
        p = self.p
        with torch.no_grad():
            dtype = next(p.vae.parameters()).dtype
            posterior = p.vae.encode((hr * 2 - 1).to(dtype)).latent_dist
            noise_z = torch.randn(posterior.mean.shape, generator=generator, device=self.device, dtype=dtype)
            z = (posterior.mean + posterior.std * noise_z).float() * p.scaling
            noise = torch.randn(z.shape, generator=generator, device=self.device)
            t = torch.randint(0, 1000, (z.shape[0],), generator=generator, device=self.device)
            noisy = p.scheduler.add_noise(z, noise, t)
            text = encode_ids(p.text_encoder, prompt_ids(p.tokenizer, prompts)).float()
            pixels = clip_input(lq, "train").to(next(p.vision.parameters()).dtype)
            hidden = tuple(h.float() for h in p.vision(pixel_values=pixels, output_hidden_states=True).hidden_states)
        autocast = torch.autocast("cuda", dtype=self.amp) if self.amp else nullcontext()
        with autocast:
            image = p.refine(hidden)
            rgbs, down, mid = p.controlnet(noisy, t, text, lq, image)
            eps = p.unet(noisy, t, text, down, mid, image)
        return F.mse_loss(eps.float(), noise) + structure_loss(rgbs, hr)

    def step(self, step: int) -> float:
        generator = torch.Generator(device=self.device).manual_seed(self.config.seed * 1_000_003 + step)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(self.accumulate):
            loss = self.loss(*self.batch(step, micro), generator) / self.accumulate
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += float(loss.detach())
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.clipped, self.config.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if not math.isfinite(total):
            raise ModelError(f"training diverged at step {step + 1}: loss is {total}")
        self.losses.append(total)
        return total

    def save(self, step: int) -> Path:
        folder = self.out / f"checkpoint-{step}"
        save_checkpoint(folder, self.p.unet, self.p.controlnet, self.p.refine)
        state = {"step": step, "optimizer": self.optimizer.state_dict(), "losses": list(self.losses),
                 "scaler": self.scaler.state_dict() if self.scaler else {}}  # fmt: skip
        write_with_atomic(folder / STATE, lambda tmp: torch.save(state, tmp))
        write_text_atomic(self.out / LATEST, json.dumps({"checkpoint": folder.name, "step": step}) + "\n")
        kept = sorted(self.out.glob("checkpoint-*"), key=lambda f: int(f.name.split("-")[1]))
        for old in kept[: -self.config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        self.emit("checkpoint", {"step": step, "path": str(folder)})
        return folder

    def resume(self) -> int:
        pointer = self.out / LATEST
        if not pointer.is_file():
            raise ConfigError(f"{self.out} has no {LATEST}: nothing to resume (start without --resume)")
        folder = self.out / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
        load_weights_into(folder, self.p.unet, self.p.controlnet, self.p.refine)
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.losses = list(state["losses"])
        return int(state["step"])


def init_from_sd15_unet(unet: torch.nn.Module, path: Path) -> int:
    """SD-1.5's U-Net weights into the stock part (every stock key required); the added attentions stay as drawn."""
    from cirbench.models.checkpoints import load_state_dict
    from cirbench.models.sspir.sspir_unet import is_addition
    from cirbench.weights.layouts import Layout, compare, specs_of

    stock = {k: v for k, v in unet.state_dict().items() if not is_addition(k)}
    state = load_state_dict(path)
    report = compare(Layout(specs_of(stock), any_float=True), specs_of(state))
    if not report.ok:
        raise ModelError(f"{path} is not SD-1.5's U-Net: {report.summary()}")
    unet.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return len(state)


def training_pipeline(options: dict[str, Any], seed: int):
    """The SSP-IR pipeline to train: tiny (seeded) or from SD-1.5 (U-Net, VAE, text encoder) and CLIP-L/14."""
    from cirbench.models.sspir import sspir_towers as towers
    from cirbench.models.sspir.sspir_checkpoint import SSPIRNetworks
    from cirbench.models.sspir.sspir_controlnet import SSPIRControlNet
    from cirbench.models.sspir.sspir_pipeline import SSPIRPipeline, SSPIRSettings
    from cirbench.models.sspir.sspir_tiny import tiny_parts
    from cirbench.models.sspir.sspir_unet import SSPIRUNet
    from cirbench.models.sspir.tpbnet import TPBNet

    towers.requires_extra("cirbench train sspir")
    config = options.get("config", "official")
    if config == "tiny":
        nets, parts, vision = tiny_parts(seed)
    elif config == "official":
        sd15, clip = str(options.get("sd15", "")), str(options.get("clip", ""))
        unet_file = Path(sd15) / "unet" / "diffusion_pytorch_model.safetensors" if sd15 else None
        missing = towers.missing_sd15(sd15, clip) + ([] if sd15 or towers.cached(towers.UNET_FILE) else [towers.UNET_FILE])
        if missing:
            raise ModelError(f"cirbench train sspir needs {', '.join(missing)}: `cirbench weights download "
                             f"{' '.join(missing)}`, or -O sd15=DIR / -O clip=DIR")  # fmt: skip
        torch.manual_seed(seed)
        unet = SSPIRUNet()
        init_from_sd15_unet(unet, unet_file or towers.cached(towers.UNET_FILE))
        nets = SSPIRNetworks(unet, SSPIRControlNet.from_unet(unet), TPBNet(), {"init": "SD-1.5"})
        parts, vision = towers.load_sd15(sd15), towers.load_vision_tower(clip)
    else:
        raise ConfigError(f"config must be official or tiny, got '{config}'")
    return SSPIRPipeline(nets, parts, vision, SSPIRSettings())


def train_sspir(data: str | Path, *, tasks: list[str] | None, config: TrainConfig, out: str | Path, resume: bool,
                device: str, stop_after: int | None, on_event: EventFn | None):  # fmt: skip
    """Build (or resume) and run; returns the generic trainer's TrainResult (weights = the last checkpoint-N)."""
    from cirbench.training.state import History, check_run_record
    from cirbench.training.trainer import TrainResult

    options = dict(config.model_options)
    unknown = sorted(set(options) - {"config", "sd15", "clip", "captions", "accumulate", "null_text_ratio"})
    if unknown:
        raise ConfigError(f"sspir training has no option(s) {', '.join(unknown)} (its options: config, sd15, clip, "
                          "captions, accumulate, null_text_ratio)")  # fmt: skip
    torch.manual_seed(config.seed)
    dataset, out = BuiltDataset.open(data), Path(out)
    pipeline = training_pipeline(options, config.seed)
    for module in pipeline.modules():
        torch.nn.Module.to(module, device)
    trainer = SSPIRTrainer(pipeline, dataset, tasks, config, out, device, options, on_event)
    out.mkdir(parents=True, exist_ok=True)
    record = {"model": "sspir", "data": str(dataset.root.resolve()), "tasks": tasks or [],
              "config": config.fingerprint(), "torch": torch.__version__}  # fmt: skip
    check_run_record(out, record, resume)
    start = trainer.resume() if resume else 0
    stop = config.steps if stop_after is None else min(config.steps, max(stop_after, start))
    trainer.emit("start", {"start": start, "stop": stop, "total": config.steps,
                           "train_pairs": len(trainer.crops.pairs), "val_pairs": 0})  # fmt: skip
    folder = None
    for step in range(start, stop):
        loss = trainer.step(step)
        trainer.emit("step", {"step": step + 1, "loss": loss, "lr": config.lr})
        if (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0) or step + 1 == stop:
            folder = trainer.save(step + 1)
    history = History(loss=list(trainer.losses), lr=[config.lr] * len(trainer.losses))
    return TrainResult(out, stop, stop >= config.steps, folder, history)
