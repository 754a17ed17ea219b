"""Restoration-model API: the RestorationModel protocol, its metadata, and the MODELS registry.

A model is one file here (or an entry point of group ``cirbench.models``) registering a factory by name.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from cirbench.errors import CirbenchError, ConfigError, UnknownNameError
from cirbench.registry import Registry

if TYPE_CHECKING:
    from cirbench.tasks import Task


class ModelError(CirbenchError):
    """A model cannot be built or returned an output that breaks the RestorationModel contract."""


@dataclass(frozen=True)
class ModelInfo:
    """What a model is and how `evaluate` must feed it."""

    name: str  # registry name, e.g. "identity", "promptcir-s"
    version: str  # e.g. "1", or the weights' sha256 prefix
    needs_task_label: bool  # True = oracle model: told the Task (codec, level, MoE-DiffIR id) at inference
    size_multiple: int = 1  # inputs are padded (reflect) to a multiple of this and cropped back by `evaluate`
    tile_size: int | None = None  # preferred tile size for tiled inference (None = whole image)
    trainable: bool = False
    description: str = ""
    label: str = ""  # e.g. "cirbench retrain (not the paper's weights)"
    details: dict[str, Any] = field(default_factory=dict, hash=False)  # inference settings for the run record
    not_a_result: str = ""  # why its scores are not a result (e.g. "seeded random weights"); "" = a result

    @property
    def is_result(self) -> bool:
        return not self.not_a_result


@runtime_checkable
class RestorationModel(Protocol):
    """restore(lq [B,3,H,W] float32 in [0,1], task or None) -> same shape in [0,1] (not yet quantised).

    Optional: ``on_batch(stems)``, called by `evaluate` before each batch with its image names (e.g. for captions).
    """

    info: ModelInfo

    def restore(self, lq: torch.Tensor, task: Task | None) -> torch.Tensor: ...

    def to(self, device: str) -> RestorationModel: ...


ModelFactory = Callable[..., RestorationModel]
DEVICE_FORMS = "cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def check_device(device: str) -> str:
    """``device`` if it names a torch device cirbench runs on (cpu, cuda, cuda:N, mps); ConfigError otherwise."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise ConfigError(f"device '{device}' is not one of {DEVICE_FORMS}")
    return device

MODELS: Registry[ModelFactory] = Registry("model", package="cirbench.models", group="cirbench.models")


@dataclass(frozen=True)
class ModelCard:
    """What `cirbench models` says of a model without building it: its mode and the weight files it needs."""

    mode: str = ""  # "blind" or "oracle"; "" when the model decides at build time
    weights: tuple[str, ...] = ()  # canonical files (`cirbench weights list`) its default configuration loads
    weights_status: Callable[[], str] | None = None  # for weights outside the cache (e.g. shipped in the package)


MODEL_CARDS: dict[str, ModelCard] = {}


def register_model(name: str, mode: str = "", weights: tuple[str, ...] = (),
                   weights_status: Callable[[], str] | None = None) -> Callable[[ModelFactory], ModelFactory]:  # fmt: skip
    """Decorator for a factory ``(checkpoint=None, device="cpu", **options) -> RestorationModel``; ``mode`` and
    ``weights`` (canonical file names) are what `cirbench models` lists before anything is built."""
    MODEL_CARDS[name] = ModelCard(mode, tuple(weights), weights_status)
    return MODELS.register(name)


def describe_models() -> list[dict[str, str]]:
    """name, mode, weights (installed / missing: file ...), description of every registered model."""
    from cirbench.weights.manager import get_weight, weight_status

    rows = []
    for name in MODELS.names():
        card = MODEL_CARDS.get(name, ModelCard())
        factory = MODELS.get(name)
        text = " ".join((inspect.getdoc(factory) or "").split())
        summary = re.split(r"(?<=\.)\s", text, maxsplit=1)[0].rstrip(".").replace("``", "")
        if card.weights_status is not None:
            weights = card.weights_status()
        elif card.weights:
            missing = [f for f in card.weights if weight_status(get_weight(f)) not in ("ok", "unverified")]
            weights = f"missing: {', '.join(missing)}" if missing else "installed"
        else:
            weights = "none needed"
        rows.append({"name": name, "mode": card.mode or "?", "weights": weights, "description": summary})
    return rows


def _factory_from_path(spec: str) -> ModelFactory:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UnknownNameError(f"model '{spec}': expected a registry name or 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownNameError(f"model '{spec}': cannot import module '{module_name}' ({exc})") from exc
    factory: Any = module
    for part in attribute.split("."):
        if not hasattr(factory, part):
            raise UnknownNameError(f"model '{spec}': module '{module_name}' has no attribute '{attribute}'")
        factory = getattr(factory, part)
    if not callable(factory):
        raise UnknownNameError(f"model '{spec}': '{attribute}' is not callable")
    return factory


def resolve_factory(spec: str) -> ModelFactory:
    """The factory named by ``spec``: a registry name (built-in or entry point) or ``module:factory``."""
    return _factory_from_path(spec) if ":" in spec else MODELS.get(spec)


def _signature(factory: ModelFactory) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # builtins and some C callables have no signature: let the call decide
        return None


def _check_factory(spec: str, parameters: dict[str, inspect.Parameter] | None) -> None:
    """A model factory takes ``checkpoint`` and ``device`` by keyword (or ``**options``)."""
    if parameters is None:
        raise ModelError(f"'{spec}' is not a model factory: its signature cannot be read")
    keyword = {n for n, p in parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    if not {"checkpoint", "device"} <= keyword and not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        raise ModelError(
            f"'{spec}' is not a model factory: a factory takes (checkpoint=None, device='cpu', **options) "
            "and returns a RestorationModel"
        )


def _coerce(spec: str, parameter: inspect.Parameter, value: Any) -> Any:
    """Option values from the command line arrive as JSON or text: convert them to the default's type."""
    default = parameter.default
    if default is inspect.Parameter.empty or default is None or isinstance(value, type(default)):
        return value
    kind = type(default)
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind in (int, float, str):
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return kind(value)
    except (TypeError, ValueError):
        raise ModelError(
            f"model '{spec}' option {parameter.name}={value!r}: expected {kind.__name__} (default {default!r})"
        ) from None
    return value


def _check_options(spec: str, parameters: dict[str, inspect.Parameter], options: dict[str, Any]) -> dict[str, Any]:
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    accepted = [name for name in parameters if name not in ("checkpoint", "device")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ModelError(
            f"model '{spec}' has no option(s) {', '.join(unknown)} (its options: {', '.join(accepted) or 'none'})"
        )
    return {name: _coerce(spec, parameters[name], value) for name, value in options.items()}


def load_model(spec: str, checkpoint: str | None = None, device: str = "cpu", **options: Any) -> RestorationModel:
    """Build the model named by ``spec`` on ``device``; ModelError if the result breaks the protocol."""
    if "checkpoint" in options:  # `-O checkpoint=DIR` reads as --checkpoint DIR
        if checkpoint is not None:
            raise ModelError(f"model '{spec}': the checkpoint is given twice (--checkpoint and -O checkpoint=)")
        checkpoint = str(options.pop("checkpoint"))
    factory = resolve_factory(spec)
    parameters = _signature(factory)
    _check_factory(spec, parameters)
    options = _check_options(spec, parameters, options)
    try:
        model = factory(checkpoint=checkpoint, device=device, **options)
    except CirbenchError:
        raise
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model '{spec}' cannot be built with options {options}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001  (a third-party factory's own failure becomes one line naming it)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ModelError(f"model factory '{spec}' raised {type(exc).__name__}: {first}") from exc
    info = getattr(model, "info", None)
    if not isinstance(info, ModelInfo) or not callable(getattr(model, "restore", None)):
        raise ModelError(f"model '{spec}' does not implement RestorationModel (needs .info: ModelInfo and .restore)")
    if info.size_multiple < 1:
        raise ModelError(f"model '{spec}' declares size_multiple {info.size_multiple}; it must be >= 1")
    return model


__all__ = [
    "DEVICE_FORMS",
    "MODELS",
    "MODEL_CARDS",
    "ModelCard",
    "ModelError",
    "ModelFactory",
    "ModelInfo",
    "RestorationModel",
    "check_device",
    "describe_models",
    "load_model",
    "register_model",
    "resolve_factory",
]
