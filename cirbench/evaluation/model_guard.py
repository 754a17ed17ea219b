"""The RestorationModel contract, enforced at every call: what a model raised or returned, named in one line.

Each error names the model, the dataset image(s) and the task; outputs far outside [0, 1] are refused with a hint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cirbench.errors import CirbenchError
from cirbench.models import ModelError

RANGE_TOLERANCE = 1.0 / 255.0  # excursions up to one 8-bit level are clamped silently (counted)
RANGE_SHARE = 0.01  # more than this share of values beyond the tolerance is an error, not a clamp


@dataclass(frozen=True)
class CallSite:
    """Where a model call happens: for messages only."""

    model: str
    dataset: str
    task: str
    stems: tuple[str, ...]

    def where(self) -> str:
        shown = ", ".join(f"{self.dataset}/{s}" for s in self.stems[:3]) + (" ..." if len(self.stems) > 3 else "")
        return f"{shown} ({self.task})"


def _type_name(value: object) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"


def checked_output(out: object, lq: torch.Tensor, site: CallSite) -> torch.Tensor:
    """``out`` if it is a float tensor of ``lq``'s shape on ``lq``'s device; else ModelError saying what it was."""
    head = f"model '{site.model}' returned"
    if out is None:
        raise ModelError(f"{head} None on {site.where()}; return the restored batch as a torch.Tensor")
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{head} a {_type_name(out)} on {site.where()}; return a torch.Tensor")
    if out.device.type == "meta":
        raise ModelError(f"{head} a tensor on device meta on {site.where()}; its weights were never loaded or made")
    if not out.is_floating_point():
        raise ModelError(f"{head} dtype {str(out.dtype).removeprefix('torch.')} on {site.where()}; "
                         "return float values in [0, 1]")  # fmt: skip
    if out.device != lq.device:
        raise ModelError(f"{head} a tensor on {out.device} for an input on {lq.device} ({site.where()})")
    if out.shape != lq.shape:
        raise ModelError(f"{head} shape {list(out.shape)} for an input of {list(lq.shape)} on {site.where()}")
    return out


def guarded_restore(model, label, site: CallSite):
    """A restore function for the tiler: the model's output, checked, with anything it raises named."""

    def restore(lq: torch.Tensor) -> torch.Tensor:
        try:
            out = model.restore(lq, label)
        except CirbenchError:
            raise
        except Exception as exc:  # noqa: BLE001  (a model's own failure, whatever it is, becomes one named line)
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ModelError(f"model '{site.model}' raised {type(exc).__name__} on {site.where()}: {first}") from exc
        return checked_output(out, lq, site).to(torch.float32)

    return restore


@dataclass
class RangeCheck:
    """Device-side facts about one output batch, read only when scores are flushed (no per-batch sync)."""

    finite: torch.Tensor  # 0-d bool
    outside: torch.Tensor  # 0-d int64: values beyond [0, 1] by more than RANGE_TOLERANCE
    clamped: torch.Tensor  # 0-d int64: pixels with a value outside [0, 1] at all (clamped before scoring)
    low: torch.Tensor  # 0-d: min value (finite values only)
    high: torch.Tensor  # 0-d: max value
    values: int
    known_in_range: bool = False  # checked on the host already: every value finite and within [0, 1]

    @classmethod
    def of(cls, out: torch.Tensor) -> RangeCheck:
        if out.device.type == "cpu":  # reading two numbers costs nothing here: most outputs need one pass only
            low, high = torch.aminmax(out)  # NaN anywhere makes both NaN, and the test below False
            if bool(low >= 0.0) and bool(high <= 1.0):
                zero = torch.zeros((), dtype=torch.int64)
                return cls(torch.ones((), dtype=torch.bool), zero, zero, low, high, out.numel(), True)
        finite = torch.isfinite(out)
        safe = torch.where(finite, out, torch.zeros((), dtype=out.dtype, device=out.device))
        outside = ((safe < -RANGE_TOLERANCE) | (safe > 1.0 + RANGE_TOLERANCE)).sum()
        clamped = ((safe < 0.0) | (safe > 1.0)).any(dim=1).sum()  # [B,3,H,W]: a pixel is its 3 values
        return cls(finite.all(), outside, clamped, safe.min(), safe.max(), out.numel())

    def verdict(self, site: CallSite) -> int:
        """Clamped pixels of the batch; ModelError for NaN/inf or for an output mostly out of range."""
        if not bool(self.finite):
            raise ModelError(f"model '{site.model}' returned NaN or inf on {site.where()}")
        if int(self.outside) > RANGE_SHARE * self.values:
            low, high = float(self.low), float(self.high)
            hint = ("did you return 0..255?" if high > 2.0 else "did you return -1..1?" if low < -0.5
                    else "return values in [0, 1]")  # fmt: skip
            share = int(self.outside) / self.values
            extreme = f"max {high:.4g}" if high > 1.0 + RANGE_TOLERANCE else f"min {low:.4g}"
            raise ModelError(
                f"model '{site.model}' returned values outside [0, 1] on {site.where()} ({share:.1%} of them by more "
                f"than 1/255): {extreme}: {hint}"
            )
        return int(self.clamped)
