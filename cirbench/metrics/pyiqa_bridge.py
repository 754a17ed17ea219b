"""Every IQA-PyTorch (pyiqa) metric by name, ``pyiqa:<name>``, scored by pyiqa's own code (optional extra [iqa]).

Direction, kind and range come from pyiqa's metadata; its downloads go through cirbench's offline messages, its
checkpoints load tensors only, and pyiqa's version is recorded with every value.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib.metadata
import io
import os
import pickle
import re
import urllib.error
from pathlib import Path
from typing import Any

import torch

from cirbench.errors import UnknownNameError
from cirbench.metrics._base import (
    MetricError,
    MetricInfo,
    MetricUnavailable,
    PairedMetric,
    as_unit_float,
    check_pair,
)
from cirbench.weights.manager import WeightFile, WeightsUnavailable

PREFIX = "pyiqa:"
FOLDER_ONLY = ("FID", "InceptionScore")  # pyiqa computes these from folders; cirbench has its own fid/kid
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")  # torch hub convention: name-<sha256 prefix>.ext


class PyiqaWeightsUnavailable(WeightsUnavailable):
    """A file pyiqa (or torchvision under it) would download is not in its cache and cannot be fetched."""

    def __init__(self, spec: WeightFile, reason: str) -> None:
        super().__init__(spec, reason)
        where = "--pyiqa" if Path(spec.purpose).name == "pyiqa" else "--torch-hub"
        self.args = (
            f"weights '{spec.filename}' for a pyiqa metric are not available: {reason}. Download {spec.url} on a "
            f"machine with internet, then run: cirbench weights import {where} /path/to/{spec.filename}",
        )

    def __str__(self) -> str:
        return self.args[0]


def is_pyiqa_name(name: str) -> bool:
    return name.lower().startswith(PREFIX)


def _pyiqa_configs() -> dict[str, dict[str, Any]]:
    try:
        from pyiqa.default_model_configs import DEFAULT_CONFIGS
    except ImportError as exc:
        raise MetricUnavailable(
            "pyiqa metrics need IQA-PyTorch: pip install 'cirbench[iqa]' (pyiqa's licence is PolyForm "
            f"Noncommercial; cirbench only calls it) [{exc}]"
        ) from exc
    return DEFAULT_CONFIGS


def _range(text: Any) -> tuple[float, float]:
    parts = [p.strip().lstrip("~") for p in str(text or "").split(",")]
    try:
        low, high = (float(p) if p else float("inf") for p in parts[:2])
    except ValueError:
        return (float("-inf"), float("inf"))
    return (low if parts[0] else float("-inf"), high)


@functools.cache
def pyiqa_info(name: str) -> MetricInfo:
    """cirbench metadata of pyiqa metric ``name`` (without ``pyiqa:``), from pyiqa's DEFAULT_CONFIGS."""
    configs = _pyiqa_configs()
    key = name.lower()
    if key not in configs:
        close = difflib.get_close_matches(key, list(configs), n=3)
        hint = f" (did you mean {', '.join(PREFIX + c for c in close)}?)" if close else ""
        raise UnknownNameError(f"unknown pyiqa metric '{name}'{hint}; `python -c \"import pyiqa; print(pyiqa.list_models())\"` lists them")
    config = configs[key]
    if config["metric_opts"]["type"] in FOLDER_ONLY:
        raise MetricError(f"pyiqa:{key} scores folders, not image pairs; use cirbench's own fid, patch_fid or kid")
    return MetricInfo(
        name=PREFIX + key,
        higher_better=not config.get("lower_better", False),
        range=_range(config.get("score_range")),
        needs_weights=True,  # most do; the ones that do not simply never download
        kind="paired",
        description=f"pyiqa {key} ({config['metric_mode']}), pyiqa's own code and defaults",
        no_reference=config["metric_mode"] == "NR",
    )


def _weight_spec(url: str, destination: str) -> WeightFile:
    name = os.path.basename(destination)
    found = HASH_IN_NAME.search(name)
    return WeightFile(name, url, found.group(1) if found else "", str(Path(destination).parent), "")


@contextlib.contextmanager
def guarded_downloads(download: bool):
    """While pyiqa builds a metric: downloads only when allowed (one-line error otherwise), tensors-only loads."""
    import torch.hub
    from pyiqa.utils import download_util

    real_download, real_load = download_util.download_url_to_file, torch.load  # torch.hub's is the same function

    def fetch(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        spec = _weight_spec(url, dst)
        if not download or os.environ.get("CIRBENCH_OFFLINE") == "1":
            raise PyiqaWeightsUnavailable(spec, f"not in the cache {Path(dst).parent} and downloads are off")
        try:
            real_download(url, dst, hash_prefix=hash_prefix or spec.sha256_prefix or None, progress=progress)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise PyiqaWeightsUnavailable(spec, f"download failed ({getattr(exc, 'reason', exc)})") from exc

    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True  # pyiqa asks for full unpickling; cirbench never runs a file's code
        return real_load(*args, **kwargs)

    patches = [(download_util, "download_url_to_file", fetch), (torch.hub, "download_url_to_file", fetch),
               (torch, "load", load)]  # fmt: skip
    saved = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in patches]
    try:
        for module, attribute, replacement in patches:
            setattr(module, attribute, replacement)
        yield
    finally:
        for module, attribute, original in saved:
            setattr(module, attribute, original)


class PyiqaMetric(PairedMetric):
    """One pyiqa metric: full-reference ones get (restored, reference), no-reference ones the restored image."""

    info: MetricInfo

    def __init__(self, name: str, device: str = "cpu", download: bool = True, **options: Any) -> None:
        super().__init__(device)
        self.info = pyiqa_info(name)
        self.pyiqa_name = self.info.name.removeprefix(PREFIX)
        import pyiqa

        output = io.StringIO()
        try:
            with guarded_downloads(download), contextlib.redirect_stdout(output):
                self.model = pyiqa.create_metric(self.pyiqa_name, device=self.device, **options)
        except WeightsUnavailable:
            raise
        except pickle.UnpicklingError as exc:
            raise MetricError(f"pyiqa metric '{self.pyiqa_name}': a weight file holds pickled Python objects besides "
                              "tensors; cirbench loads tensors only, so it was refused unread") from exc  # fmt: skip
        except (OSError, RuntimeError, ValueError, TypeError, KeyError, AssertionError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MetricError(f"pyiqa metric '{self.pyiqa_name}' could not be built: {first}") from exc
        self._record(pyiqa_metric=self.pyiqa_name, pyiqa_version=importlib.metadata.version("pyiqa"),
                     mode="NR" if self.info.no_reference else "FR", **options)  # fmt: skip

    def __call__(self, ref: torch.Tensor | None, test: torch.Tensor) -> torch.Tensor:
        if ref is None and not self.info.no_reference:
            raise MetricError(f"{self.info.name} is a full-reference metric: it needs the reference image")
        check_pair(test if ref is None else ref, test)
        ref, test = (None if ref is None else as_unit_float(ref)), as_unit_float(test)
        with torch.no_grad():
            return self.compute_batch(ref, test).to(torch.float64)

    def score(self, images: torch.Tensor) -> torch.Tensor:
        return self(None, images)

    def compute_batch(self, ref: torch.Tensor | None, test: torch.Tensor) -> torch.Tensor:
        test = test.to(self.device, torch.float32)
        if self.info.no_reference:
            values = self.model(test)
        else:
            values = self.model(test, ref.to(self.device, torch.float32))
        return torch.as_tensor(values).reshape(-1).detach().cpu()
