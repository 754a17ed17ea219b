"""`cirbench train`: trains any registered trainable model on paired random crops of a built dataset, with
AdamW, warm-up + cosine learning rate, AMP on CUDA, periodic PSNR validation, checkpoints and exact resume.
"""

from __future__ import annotations

import inspect
import json
import math
import platform
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cirbench.cpu_memory import keep_freed_memory
from cirbench.dataset.reader import BuiltDataset
from cirbench.errors import ConfigError
from cirbench.models import ModelError, RestorationModel, load_model, resolve_factory
from cirbench.models.checkpoints import save_state_dict
from cirbench.training.config import TrainConfig
from cirbench.training.data import PairedCrops, Split, split_pairs, validation_tensors
from cirbench.training.losses import resolve_loss
from cirbench.training.state import History, check_run_record, load_checkpoint, save_checkpoint

EventFn = Callable[[str, dict[str, Any]], None]
FINAL = "final.safetensors"


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps_done: int
    finished: bool
    final_weights: Path | None
    history: History


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1.0 + math.cos(math.pi * progress))


def build_model(spec: str, init_checkpoint: str | None, device: str, options: dict[str, Any]) -> RestorationModel:
    """A trainable model: from ``init_checkpoint``, else untrained (``init="random"`` if the factory takes it)."""
    if init_checkpoint is None and "init" in inspect.signature(resolve_factory(spec)).parameters:
        options = {"init": "random", **options}
    return check_trainable(load_model(spec, checkpoint=init_checkpoint, device=device, **options))


def check_trainable(model: RestorationModel) -> RestorationModel:
    if not model.info.trainable or not isinstance(getattr(model, "network", None), torch.nn.Module):
        raise ModelError(f"model '{model.info.name}' is not trainable (needs info.trainable and a .network module)")
    return model


def _amp_setup(mode: str, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    if device.type != "cuda" or mode == "off":
        if mode in ("bf16", "fp16") and device.type != "cuda":
            raise ConfigError(f"amp={mode} needs a CUDA device (training runs on {device})")
        return None, None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


class Trainer:
    """One training run in folder ``out``; construct, then call :meth:`run`."""

    def __init__(
        self,
        model: RestorationModel,
        dataset: BuiltDataset,
        tasks: list[str] | None,
        config: TrainConfig,
        out: Path,
        device: str,
        on_event: EventFn | None = None,
    ) -> None:
        self.model, self.dataset, self.config, self.out = model, dataset, config, Path(out)
        self.network: torch.nn.Module = model.network  # type: ignore[attr-defined]
        self.device = torch.device(device)
        self.emit = on_event or (lambda kind, payload: None)
        self.multiple = int(getattr(self.network, "size_multiple", model.info.size_multiple))
        if config.crop_size % self.multiple:
            raise ConfigError(f"crop_size {config.crop_size} must be a multiple of {self.multiple} for this model")
        self.split: Split = split_pairs(dataset, tasks, config.val_images, config.seed, config.crop_size)
        self.loss_fn = resolve_loss(config.loss, config.loss_options)
        if isinstance(self.loss_fn, torch.nn.Module):  # a loss with its own network (e.g. a frozen prior)
            self.loss_fn.to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(),
            lr=config.lr,
            betas=(config.beta1, config.beta2),
            weight_decay=config.weight_decay,
        )
        self.amp_dtype, self.scaler = _amp_setup(config.amp, self.device)
        self.history = History()
        self.val_items = validation_tensors(self.split.val, config.val_crop, self.multiple)
        self._psnr = None

    def _loader(self, start: int, stop: int) -> torch.utils.data.DataLoader:
        c = self.config
        crops = PairedCrops(self.split.train, c.crop_size, c.seed, c.augment, c.steps * c.batch_size)
        return torch.utils.data.DataLoader(
            crops,
            batch_size=c.batch_size,
            sampler=range(start * c.batch_size, stop * c.batch_size),
            num_workers=c.workers,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
        )

    def _step(self, step: int, lq: torch.Tensor, hr: torch.Tensor) -> float:
        lr = lr_at(step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        lq, hr = lq.to(self.device, non_blocking=True), hr.to(self.device, non_blocking=True)
        autocast = torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
        self.network.train()
        with autocast:
            output = self.network(lq)
        if hasattr(self.loss_fn, "set_step"):
            self.loss_fn.set_step(step)  # losses that draw noise draw it from (seed, step): resumes are exact
        loss = self.loss_fn(output.float(), hr)
        self.optimizer.zero_grad(set_to_none=True)
        scaled = self.scaler.scale(loss) if self.scaler else loss
        scaled.backward()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise ModelError(f"training diverged at step {step + 1}: loss is {value}")
        self.history.loss.append(value)
        self.history.lr.append(lr)
        return value

    def validate(self, step: int) -> dict[str, Any]:
        """Mean PSNR (RGB, dB) of the restored and of the unrestored held-out crops, overall and per task."""
        from cirbench.metrics import create_metric

        self._psnr = self._psnr or create_metric("psnr", device=str(self.device))
        self.network.eval()
        per_task: dict[str, list[tuple[float, float]]] = {}
        with torch.no_grad():
            for pair, lq, hr in self.val_items:
                lq, hr = lq.to(self.device), hr.to(self.device)
                restored = (self.network(lq) if self.config.val_crop else self.model.restore(lq, None)).clamp(0, 1)
                scores = self._psnr(hr, restored.float()), self._psnr(hr, lq)
                per_task.setdefault(pair.task, []).append((float(scores[0][0]), float(scores[1][0])))
        record: dict[str, Any] = {"step": step, "tasks": {}}
        for task, values in per_task.items():
            record["tasks"][task] = {"psnr": _mean(v[0] for v in values), "psnr_input": _mean(v[1] for v in values)}
        record["psnr"] = _mean(t["psnr"] for t in record["tasks"].values())
        record["psnr_input"] = _mean(t["psnr_input"] for t in record["tasks"].values())
        self.history.val.append(record)
        self.emit("val", record)
        return record

    def _metadata(self) -> dict[str, str]:
        return {"model": self.model.info.name, "config": json.dumps(self.config.as_record(), default=str)}

    def _save(self, step: int) -> None:
        path = save_checkpoint(
            self.out, step, self.network, self.optimizer, self.scaler, self._metadata(), self.config.keep_checkpoints
        )
        self.history.write(self.out)
        self.emit("checkpoint", {"step": step, "path": str(path)})

    def _export(self) -> Path:
        dtype = torch.float16 if self.config.export_dtype == "float16" else torch.float32
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.network.state_dict().items()}
        path = self.out / FINAL
        save_state_dict(state, path, metadata={**self._metadata(), "steps": str(self.config.steps)})
        return path

    def run(self, resume: bool = False, stop_after: int | None = None) -> TrainResult:
        """Train from step 0 (or the last checkpoint) to ``steps``, or until ``stop_after`` steps are done."""
        c = self.config
        start = 0
        if resume:
            start = load_checkpoint(self.out, self.network, self.optimizer, self.scaler)
            self.history = History.read(self.out)
            self.history.truncate(start)
        stop = c.steps if stop_after is None else min(c.steps, max(stop_after, start))
        self.emit(
            "start",
            {
                "start": start,
                "stop": stop,
                "total": c.steps,
                "train_pairs": len(self.split.train),
                "val_pairs": len(self.split.val),
            },
        )
        step = start
        for lq, hr in self._loader(start, stop):
            loss = self._step(step, lq, hr)
            step += 1
            self.emit("step", {"step": step, "loss": loss, "lr": self.history.lr[-1]})
            if self.val_items and ((c.val_every and step % c.val_every == 0) or step == c.steps):
                self.validate(step)
            if (c.checkpoint_every and step % c.checkpoint_every == 0) or step in (c.steps, stop):
                self._save(step)
        finished = step >= c.steps
        final = self._export() if finished else None
        self.emit("done", {"step": step, "finished": finished, "final": str(final) if final else None})
        return TrainResult(self.out, step, finished, final, self.history)


def _mean(values: Any) -> float:
    items = list(values)
    return sum(items) / len(items) if items else float("nan")


def run_record(
    model: RestorationModel,
    spec: str,
    dataset: BuiltDataset,
    tasks: list[str] | None,
    config: TrainConfig,
    init_checkpoint: str | None,
    loss_fn: Any = None,
) -> dict[str, Any]:
    describe = getattr(loss_fn, "describe", None)  # a loss may describe itself (DiffLoss records its deviation)
    loss = {"name": config.loss, "options": config.loss_options, **(describe() if describe else {})}
    return {
        "model": spec,
        "model_version": model.info.version,
        "init_checkpoint": init_checkpoint,
        "data": str(dataset.root.resolve()),
        "tasks": tasks or [],
        "config": config.fingerprint(),
        "loss": loss,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def train(
    spec: str | RestorationModel,
    data: str | Path,
    *,
    tasks: list[str] | None = None,
    config: TrainConfig | None = None,
    out: str | Path,
    resume: bool = False,
    device: str = "cpu",
    init_checkpoint: str | None = None,
    stop_after: int | None = None,
    on_event: EventFn | None = None,
) -> TrainResult:
    """Build the model (seeded; or use the given trainable model), open the data, run or resume into ``out``."""
    config = config or TrainConfig()
    custom = getattr(resolve_factory(spec), "trainer", None) if isinstance(spec, str) else None
    if custom is not None:  # a model with its own objective and checkpoint layout (e.g. sspir)
        if init_checkpoint is not None:
            raise ConfigError(f"model '{spec}' trains from its own initialisation (see the README); --init is not "
                              "supported for it (continue a run with --resume)")  # fmt: skip
        return custom(data, tasks=tasks, config=config, out=out, resume=resume, device=device,
                      stop_after=stop_after, on_event=on_event)  # fmt: skip
    if device == "cpu":
        keep_freed_memory()
    torch.manual_seed(config.seed)
    if isinstance(spec, str):
        model = build_model(spec, init_checkpoint, device, config.model_options)
    else:
        model, spec = check_trainable(spec.to(device)), spec.info.name
    dataset = BuiltDataset.open(data)
    out = Path(out)
    trainer = Trainer(model, dataset, tasks, config, out, device, on_event)
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(model, spec, dataset, tasks, config, init_checkpoint, trainer.loss_fn)
    check_run_record(out, record, resume)
    return trainer.run(resume=resume, stop_after=stop_after)
