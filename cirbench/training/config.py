"""Training configuration: one frozen dataclass, read from the ``[train]`` (and ``[model]``) tables of a TOML file.

Unknown keys are errors, so a typo never silently trains with a default.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cirbench.errors import ConfigError

AMP_MODES = ("auto", "off", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (two runs with equal configs and data give equal weights)."""

    steps: int = 1000
    batch_size: int = 8
    crop_size: int = 128
    lr: float = 2e-4
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    loss: str = "l1"
    augment: bool = True  # random flips and 90-degree rotations (same on LQ and HR)
    val_images: int = 4  # images held out of training (all their tasks) for validation
    val_every: int = 500  # steps between validations (and one at the end); 0 = only at the end
    val_crop: int = 256  # centre crop used for validation; 0 = whole image through model.restore
    checkpoint_every: int = 500  # steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # older checkpoints are deleted
    seed: int = 0
    amp: str = "auto"  # auto: bf16 (or fp16 + grad scaling) on CUDA, off elsewhere
    workers: int = 0  # DataLoader worker processes
    export_dtype: str = "float32"  # dtype of final.safetensors: float32 or float16
    model_options: dict[str, Any] = field(default_factory=dict)  # passed to load_model
    loss_options: dict[str, Any] = field(default_factory=dict)  # the [loss] table, passed to the loss factory

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "crop_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        non_negative = (
            "warmup_steps",
            "val_images",
            "val_every",
            "val_crop",
            "checkpoint_every",
            "workers",
            "grad_clip",
            "weight_decay",
            "min_lr",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if self.keep_checkpoints < 1:
            raise ConfigError("train.keep_checkpoints must be >= 1")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"train.amp must be one of {', '.join(AMP_MODES)}, got '{self.amp}'")
        if self.export_dtype not in ("float32", "float16"):
            raise ConfigError(f"train.export_dtype must be float32 or float16, got '{self.export_dtype}'")

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """Canonical JSON of the settings that must not change when a run is resumed."""
        record = {k: v for k, v in self.as_record().items() if k not in ("workers",)}
        return json.dumps(record, sort_keys=True, default=str)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"train.{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(value, bool) and isinstance(value, int):
        return value
    if isinstance(default, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, str) and isinstance(value, str):
        return value
    raise ConfigError(f"train.{name} has the wrong type: {value!r} (expected {type(default).__name__})")


def config_from_mapping(
    train: dict[str, Any], model: dict[str, Any] | None = None, loss: dict[str, Any] | None = None
) -> TrainConfig:
    """A TrainConfig from a ``[train]`` mapping (and ``[model]``, ``[loss]`` options); ConfigError names bad keys."""
    defaults = TrainConfig()
    known = {f.name for f in fields(TrainConfig)} - {"model_options", "loss_options"}
    unknown = sorted(set(train) - known)
    if unknown:
        raise ConfigError(f"unknown [train] key(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values = {name: _coerce(name, value, getattr(defaults, name)) for name, value in train.items()}
    return TrainConfig(**values, model_options=dict(model or {}), loss_options=dict(loss or {}))


def load_config(path: str | Path | None) -> TrainConfig:
    """Defaults, or the ``[train]`` / ``[model]`` / ``[loss]`` tables of a TOML file."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read training config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(doc) - {"train", "model", "loss"})
    if unknown:
        raise ConfigError(f"{path}: unknown table(s) {', '.join(unknown)} (expected [train], [model], [loss])")
    try:
        return config_from_mapping(doc.get("train", {}), doc.get("model", {}), doc.get("loss", {}))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
