"""Learned image codecs from CompressAI (default Cheng2020-anchor): real compress()/decompress() bitstreams.

Zoo weights come through cirbench.weights.manager (sha256-checked); a local ``checkpoint`` replaces them. CPU entropy coding.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cirbench.codecs import register_codec
from cirbench.codecs._base import Codec, Encoded
from cirbench.codecs._learned import (
    ModelCache,
    check_device,
    learned_tool_versions,
    local_checkpoint,
    pack_bitstream,
    rgb_to_tensor,
    tensor_to_rgb,
    unpack_bitstream,
    validate_device,
)
from cirbench.errors import CodecError, CodecUnavailable, ConfigError
from cirbench.weights.layouts import Layout, module_layout, on_cpu, register_layout
from cirbench.weights.manager import (
    WeightFile,
    WeightsCorrupt,
    WeightsUnavailable,
    cache_dir,
    ensure_weight,
    register_weight,
)

MAGIC = b"CA"
ZOO_ROOT = "https://compressai.s3.amazonaws.com/models/v1"
ZOO_LICENCE = "Apache-2.0 / BSD-3-Clause-Clear (CompressAI zoo)"
METRICS = ("mse", "ms-ssim")
# The zoo file names (hash prefix included) of the models cirbench's task sets use; the same names and URLs as
# compressai.zoo.image.model_urls (a test checks that the installed CompressAI agrees).
CHENG2020_FILES = {
    ("cheng2020-anchor", "mse"): [
        "cheng2020-anchor-1-dad2ebff", "cheng2020-anchor-2-a29008eb", "cheng2020-anchor-3-e49be189",
        "cheng2020-anchor-4-98b0b468", "cheng2020-anchor-5-23852949", "cheng2020-anchor-6-4c052b1a",
    ],
    ("cheng2020-anchor", "ms-ssim"): [
        "cheng2020_anchor-ms-ssim-1-20f521db", "cheng2020_anchor-ms-ssim-2-c7ff5812",
        "cheng2020_anchor-ms-ssim-3-c23e22d5", "cheng2020_anchor-ms-ssim-4-0e658304",
        "cheng2020_anchor-ms-ssim-5-c0a95e77", "cheng2020_anchor-ms-ssim-6-f2dc1913",
    ],
    ("cheng2020-attn", "mse"): [
        "cheng2020_attn-mse-1-465f2b64", "cheng2020_attn-mse-2-e0805385", "cheng2020_attn-mse-3-2d07bbdf",
        "cheng2020_attn-mse-4-f7b0ccf2", "cheng2020_attn-mse-5-26c8920e", "cheng2020_attn-mse-6-730501f2",
    ],
    ("cheng2020-attn", "ms-ssim"): [
        "cheng2020_attn-ms-ssim-1-c5381d91", "cheng2020_attn-ms-ssim-2-5dad201d",
        "cheng2020_attn-ms-ssim-3-5c9be841", "cheng2020_attn-ms-ssim-4-8b2f647e",
        "cheng2020_attn-ms-ssim-5-5ca1f34c", "cheng2020_attn-ms-ssim-6-216423ec",
    ],
}
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.pth\.tar$")


_ZOO_SPECS: dict[str, WeightFile] = {}


def zoo_weight_spec(filename: str, purpose: str) -> WeightFile:
    """Register (once; later purposes are ignored) and return the catalogue entry of one CompressAI zoo file."""
    if filename in _ZOO_SPECS:
        return _ZOO_SPECS[filename]
    match = _HASH_IN_NAME.search(filename)
    if match is None:
        raise ConfigError(f"'{filename}' does not look like a CompressAI zoo file name (NAME-<8 hex>.pth.tar)")
    spec = register_weight(WeightFile(filename, f"{ZOO_ROOT}/{filename}", match.group(1), purpose, ZOO_LICENCE))
    _ZOO_SPECS[filename] = spec
    return spec


_CODING_TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")  # rebuilt by update(): sizes vary


def _table_shape(channels: dict[str, int]):
    """Shapes of the coding tables, with -1 where update() decides the size: an entropy bottleneck's tables have
    one row per latent channel, a Gaussian conditional's one per scale-table entry (64 by default)."""

    def shape_of(key: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        owner, _, name = key.rpartition(".")
        if name not in _CODING_TABLES:
            return shape
        rows = channels.get(owner, -1)
        return (rows, -1) if name == "_quantized_cdf" else (-1,) if name == "scale_table" else (rows,)

    return shape_of


def zoo_layout(architecture: str, metric: str, quality: int) -> Layout:
    """The state dict of a zoo file: the architecture's tensors (CompressAI's key renaming applied first)."""
    from compressai.entropy_models import EntropyBottleneck
    from compressai.zoo import image_models
    from compressai.zoo.pretrained import rename_key

    network = image_models[architecture](quality=quality, metric=metric, pretrained=False)
    tables = {key for key in network.state_dict() if key.rpartition(".")[2] in _CODING_TABLES}
    channels = {name: int(m.channels) for name, m in network.named_modules() if isinstance(m, EntropyBottleneck)}
    return module_layout(
        network, shape_of=_table_shape(channels), optional=frozenset(tables), rename=rename_key,
        note="coding tables may be absent (update() rebuilds them); their update()-sized dimensions are '*'",
    )  # fmt: skip


for (_arch, _metric), _stems in CHENG2020_FILES.items():
    for _quality, _stem in enumerate(_stems, start=1):
        _family = "C_PSNR" if _metric == "mse" else "C_SSIM"
        zoo_weight_spec(f"{_stem}.pth.tar", f"{_family} codec: CompressAI {_arch} ({_metric}), quality {_quality}")
        register_layout(f"{_stem}.pth.tar", on_cpu(functools.partial(zoo_layout, _arch, _metric, _quality)))


@dataclass(frozen=True)
class CompressaiParams:
    model: str = "cheng2020-anchor"
    metric: str = "mse"
    quality: int = 3
    checkpoint: str = ""
    device: str = "cpu"


_NETWORKS = ModelCache(capacity=8)
_VERIFIED: dict[str, Path] = {}  # zoo files already sha256-checked in this process


def _zoo():
    try:
        from compressai.zoo import image as zoo_image
    except ImportError as exc:
        raise CodecUnavailable("compressai", f"the compressai package cannot be imported ({exc})", "pip install compressai") from exc
    return zoo_image


def load_compressai_network(architecture: str, path: Path, device: str) -> Any:
    """A CompressAI model of ``architecture`` with the state dict in ``path`` loaded strictly, in eval mode."""
    import torch
    from compressai.zoo.pretrained import load_pretrained

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise CodecError(f"compressai: cannot read checkpoint {path}: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # CompressAI's examples/train.py checkpoint layout
    if not isinstance(state, dict):
        raise CodecError(f"compressai: {path} does not hold a state dict")
    network_class = _zoo().model_architectures[architecture]
    try:
        network = network_class.from_state_dict(load_pretrained(state))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CodecError(f"compressai: {path} does not match the {architecture} architecture: {exc}") from exc
    network.update(force=False)  # builds the coding tables only if the file does not carry them
    from cirbench.codecs._compressai_ar import accelerate  # imports torch: only when a model is loaded

    return accelerate(network.eval().to(device))


@register_codec
class CompressaiCodec(Codec):
    """A CompressAI image model (zoo or local checkpoint); bitstream = its entropy-coded strings + latent shape."""

    name = "compressai"
    max_pixels = 16_777_216
    limit_source = "cirbench bound for learned codecs: peak memory grows with the picture; split larger images"
    kind = "learned"
    file_suffix = ".cai"
    Params = CompressaiParams

    def _validate(self) -> None:
        p = self.params
        if p.metric not in METRICS:
            raise ConfigError(f"compressai metric must be one of {', '.join(METRICS)}, got '{p.metric}'")
        if not isinstance(p.quality, int) or not 1 <= p.quality <= 8:
            raise ConfigError(f"compressai quality must be an integer in 1..8, got {p.quality!r}")
        validate_device(self.name, p.device)
        zoo = _zoo()
        if p.model not in zoo.model_architectures:
            raise ConfigError(
                f"compressai model '{p.model}' is not a CompressAI zoo architecture "
                f"(known: {', '.join(sorted(zoo.model_architectures))})"
            )
        if not p.checkpoint and p.quality not in zoo.model_urls.get(p.model, {}).get(p.metric, {}):
            raise ConfigError(f"the CompressAI zoo has no {p.model} ({p.metric}) model at quality {p.quality}")

    @property
    def size_multiple(self) -> int:
        return 64  # Cheng2020 / mbt2018 downsample by 2**(4+2); every zoo model divides 64

    def zoo_filename(self) -> str:
        url = _zoo().model_urls[self.params.model][self.params.metric][self.params.quality]
        return url.rsplit("/", 1)[1]

    def weight_files(self) -> tuple[str, ...]:
        return () if self.params.checkpoint else (self.zoo_filename(),)

    def weights_path(self, download: bool = True) -> Path:
        """The verified zoo file or the local checkpoint; CodecUnavailable naming the file when missing.

        Downloads happen only when ``download`` is true and CIRBENCH_OFFLINE is not 1 (ensure_weight decides)."""
        p = self.params
        if p.checkpoint:
            return local_checkpoint(self.name, p.checkpoint)
        filename = self.zoo_filename()
        if filename in _VERIFIED and _VERIFIED[filename].is_file():
            return _VERIFIED[filename]
        zoo_weight_spec(filename, f"CompressAI {p.model} ({p.metric}), quality {p.quality}")
        try:
            _VERIFIED[filename] = ensure_weight(filename, download=download)
            return _VERIFIED[filename]
        except (WeightsUnavailable, WeightsCorrupt) as exc:
            what = f"weights file {filename} for {p.model} ({p.metric}, quality {p.quality})"
            if isinstance(exc, WeightsCorrupt):
                reason = f"{what} is corrupt: {exc}"
            else:
                reason = f"{what} is not in the cache {cache_dir()} (downloads are off or failed)"
            remedy = f"download {ZOO_ROOT}/{filename}, then run: cirbench weights import /path/to/{filename}"
            raise CodecUnavailable(self.name, reason, remedy) from exc

    def check_available(self) -> None:
        check_device(self.name, self.params.device)
        self.weights_path()

    def tool_versions(self) -> dict[str, str]:
        return learned_tool_versions(self.weights_path())

    def network(self) -> Any:
        """The loaded model (cached per process, keyed by every parameter that selects the weights)."""
        p = self.params
        path = self.weights_path()
        key = (p.model, str(path.resolve()), p.device)
        return _NETWORKS.get(key, lambda: load_compressai_network(p.model, path, p.device))

    def _encode(self, rgb: np.ndarray) -> Encoded:
        import torch

        network = self.network()
        with torch.no_grad():
            out = network.compress(rgb_to_tensor(rgb, self.params.device))
        strings = [bytes(group[0]) for group in out["strings"]]
        shape = tuple(int(s) for s in out["shape"])
        bitstream = pack_bitstream(MAGIC, shape, strings)
        return Encoded(bitstream, {"latent_shape": list(shape), "payload_bytes": sum(len(s) for s in strings)})

    def _decode(self, data: bytes) -> np.ndarray:
        import torch

        shape, strings = unpack_bitstream(data, MAGIC)
        network = self.network()
        try:
            with torch.no_grad():
                out = network.decompress([[s] for s in strings], torch.Size(shape))
        except (RuntimeError, ValueError, AssertionError) as exc:
            raise CodecError(f"compressai: cannot decode bitstream: {exc}") from exc
        return tensor_to_rgb(out["x_hat"])
