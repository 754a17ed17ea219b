"""Resumable training state on disk: network weights as safetensors, optimizer / scaler / RNG state as a
tensors-only torch file (loaded with weights_only=True), a ``latest.json`` pointer and the loss history.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cirbench.errors import CirbenchError
from cirbench.fileio import write_text_atomic, write_with_atomic
from cirbench.models.checkpoints import load_state_dict, load_strict, save_state_dict

LATEST = "latest.json"
HISTORY = "history.json"
RUN = "run.json"


class ResumeError(CirbenchError):
    """A run folder cannot be resumed: no checkpoint, unreadable state, or a different configuration."""


@dataclass
class History:
    """Per-step training loss and learning rate, and validation records."""

    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    val: list[dict[str, Any]] = field(default_factory=list)

    def truncate(self, step: int) -> None:
        del self.loss[step:], self.lr[step:]
        self.val = [v for v in self.val if v["step"] <= step]

    def write(self, out: Path) -> None:
        record = {"loss": self.loss, "lr": self.lr, "val": self.val}
        write_text_atomic(out / HISTORY, json.dumps(record, indent=1) + "\n")

    @classmethod
    def read(cls, out: Path) -> History:
        path = out / HISTORY
        if not path.is_file():
            return cls()
        record = json.loads(path.read_text(encoding="utf-8"))
        return cls(loss=list(record["loss"]), lr=list(record["lr"]), val=list(record["val"]))


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out: Path,
    step: int,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    metadata: dict[str, str],
    keep: int,
) -> Path:
    """Write checkpoints/step_N.{safetensors,state.pt}, then point latest.json at them; prune old ones."""
    folder = out / "checkpoints"
    weights = folder / f"step_{step:07d}.safetensors"
    state_file = folder / f"step_{step:07d}.state.pt"
    save_state_dict(network.state_dict(), weights, metadata={**metadata, "step": str(step)})
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": _rng_state(),
    }
    write_with_atomic(state_file, lambda tmp: torch.save(state, tmp))
    pointer = {"step": step, "weights": weights.name, "state": state_file.name}
    write_text_atomic(out / LATEST, json.dumps(pointer, indent=1) + "\n")
    _prune(folder, keep)
    return weights


def _prune(folder: Path, keep: int) -> None:
    checkpoints = sorted(folder.glob("step_*.safetensors"))
    for old in checkpoints[:-keep]:
        old.unlink(missing_ok=True)
        old.with_name(old.name.replace(".safetensors", ".state.pt")).unlink(missing_ok=True)


def load_checkpoint(
    out: Path, network: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None
) -> int:
    """Restore the state ``latest.json`` points to; returns the step it was saved at."""
    pointer_path = out / LATEST
    if not pointer_path.is_file():
        raise ResumeError(f"{out} has no {LATEST}: nothing to resume (start without --resume)")
    pointer = json.loads(pointer_path.read_text(encoding="utf-8"))
    folder = out / "checkpoints"
    load_strict(network, load_state_dict(folder / pointer["weights"]))
    try:
        state = torch.load(folder / pointer["state"], map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ResumeError(f"cannot read training state {folder / pointer['state']}: {exc}") from exc
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    return int(state["step"])


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    """Nested settings as dotted names (JSON strings holding a dict, such as the config fingerprint, opened up)."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def changed_settings(previous: dict[str, Any], record: dict[str, Any]) -> list[str]:
    """``name (old -> new)`` for every setting of ``record`` that differs from ``previous`` (run.json)."""
    old, new = {}, {}
    for key in record:
        if key != "started":
            old.update(_flat(previous.get(key), key))
            new.update(_flat(record[key], key))
    return [f"{k} ({json.dumps(old.get(k), default=str)} -> {json.dumps(new.get(k), default=str)})"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]  # fmt: skip


def check_run_record(out: Path, record: dict[str, Any], resume: bool) -> None:
    """Write run.json for a new run; on resume, refuse if the model, data or configuration differ."""
    path = out / RUN
    if resume and path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        changed = changed_settings(previous, record)
        if changed:
            raise ResumeError(f"cannot resume {out}: changed since the run started: {'; '.join(changed[:6])}"
                              + (f" (+{len(changed) - 6} more)" if len(changed) > 6 else ""))  # fmt: skip
        return
    if not resume and (out / LATEST).is_file():
        raise ResumeError(f"{out} already holds a training run: pass --resume to continue it, or choose another --out")
    write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")
