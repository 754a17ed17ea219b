"""HiFiC generative compression (Mentzer et al. 2020) with the Justin-Tan PyTorch-port checkpoints, loaded strictly.

Levels low/med/high = hific_low.pt / hific_med.pt / hific_hi.pt; rANS coding (CompressAI) of the port's symbols.
"""

from __future__ import annotations

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
from cirbench.weights.layouts import Layout, TensorSpec, module_layout, register_layout
from cirbench.weights.manager import (
    WeightFile,
    WeightsCorrupt,
    WeightsUnavailable,
    cached_path,
    ensure_weight,
    register_weight,
)

MAGIC = b"HF"
ZENODO = "https://zenodo.org/record/4026003/files"
LICENCE = "Apache-2.0 (Justin-Tan/high-fidelity-generative-compression)"
MIN_CODED_SIDE = 80  # the hyperprior's reflect padding needs latents wider than 4 (images wider than 64 px)
# Per-level defaults of the inference-relevant checkpoint args (HIFIC_NOTES.md section 3); a checkpoint's own
# `args` override them.
LEVEL_DEFAULTS = {
    "low": {"filename": "hific_low.pt", "likelihood_type": "gaussian", "normalize_input_image": True, "rate": 0.14},
    "med": {"filename": "hific_med.pt", "likelihood_type": "logistic", "normalize_input_image": False, "rate": 0.30},
    "high": {"filename": "hific_hi.pt", "likelihood_type": "gaussian", "normalize_input_image": True, "rate": 0.45},
}
# The 20 training-only discriminator entries of a GAN-stage model_state_dict (shapes from the port's code,
# hific_state_dict_keys.json), dropped before strict loading. conv1-4 are spectral-normed: weight_orig, u, v.
_DISCRIMINATOR_CHANNELS = ((15, 64), (64, 128), (128, 256), (256, 512))
DISCRIMINATOR_SHAPES = {
    "Discriminator.context_conv.weight": (12, 220, 3, 3), "Discriminator.context_conv.bias": (12,),
    "Discriminator.conv_out.weight": (1, 512, 1, 1), "Discriminator.conv_out.bias": (1,),
    **{key: shape for i, (cin, cout) in enumerate(_DISCRIMINATOR_CHANNELS, start=1) for key, shape in (
        (f"Discriminator.conv{i}.bias", (cout,)), (f"Discriminator.conv{i}.weight_orig", (cout, cin, 4, 4)),
        (f"Discriminator.conv{i}.weight_u", (cout,)), (f"Discriminator.conv{i}.weight_v", (cin * 16,)))},
}  # fmt: skip
DISCRIMINATOR_KEYS = frozenset(DISCRIMINATOR_SHAPES)

def hific_layout() -> Layout:
    """model_state_dict of a port checkpoint: the 148 core tensors, plus the optional discriminator entries."""
    from cirbench.codecs._hific_model import HificNetwork

    layout = module_layout(HificNetwork(), container=("model_state_dict",))
    discriminator = {key: TensorSpec(shape, "float32") for key, shape in DISCRIMINATOR_SHAPES.items()}
    return Layout({**layout.tensors, **discriminator}, layout.container, optional=DISCRIMINATOR_KEYS,
                  note="training-only discriminator entries may be present and are dropped")


HIFIC_WEIGHTS = {
    level: register_weight(
        WeightFile(
            spec["filename"],
            f"{ZENODO}/{spec['filename']}?download=1",
            "",  # the port publishes no checksum; the digest of the file used is recorded in tool_versions
            f"HIFIC_{index} codec: HiFiC {level} (PyTorch port by Justin Tan, target ~{spec['rate']} bpp)",
            LICENCE,
        )
    )
    for index, (level, spec) in enumerate(LEVEL_DEFAULTS.items(), start=1)
}
for _spec in HIFIC_WEIGHTS.values():
    register_layout(_spec.filename, hific_layout)


@dataclass(frozen=True)
class HificParams:
    level: str = "low"
    checkpoint: str = ""
    device: str = "cpu"


@dataclass
class LoadedHific:
    """A strictly loaded network plus the coding tables and settings read from its checkpoint."""

    network: Any
    latent_coder: Any
    hyper_coder: Any
    likelihood_type: str
    normalize_input_image: bool


_MODELS = ModelCache(capacity=3)


def _settings(level: str, args: dict[str, Any]) -> tuple[str, bool, int]:
    defaults = LEVEL_DEFAULTS[level]
    if args.get("latent_channels", 220) != 220 or args.get("use_latent_mixture_model", False):
        raise CodecError("hific: only the released configuration (220 latent channels, no mixture model) is supported")
    if args.get("sample_noise", False) or not args.get("use_channel_norm", True):
        raise CodecError("hific: checkpoints trained with sample_noise or without channel norm are not supported")
    likelihood = str(args.get("likelihood_type", defaults["likelihood_type"]))
    if likelihood not in ("gaussian", "logistic"):
        raise CodecError(f"hific: unsupported likelihood_type '{likelihood}'")
    normalize = bool(args.get("normalize_input_image", defaults["normalize_input_image"]))
    return likelihood, normalize, int(args.get("n_residual_blocks", 9))


def split_checkpoint(checkpoint: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(core state dict without the discriminator, training args) of a port checkpoint or a bare state dict."""
    if not isinstance(checkpoint, dict):
        raise CodecError("hific: the checkpoint is not a dict")
    state = checkpoint.get("model_state_dict", checkpoint)
    args = checkpoint.get("args", {}) if "model_state_dict" in checkpoint else {}
    dropped = {key for key in state if key.startswith("Discriminator.")}
    if dropped and dropped != DISCRIMINATOR_KEYS:
        raise CodecError(f"hific: unexpected discriminator entries {sorted(dropped ^ DISCRIMINATOR_KEYS)[:5]}")
    core = {key: value for key, value in state.items() if key not in dropped}
    return core, dict(args) if isinstance(args, dict) else {}


def load_hific(path: Path, level: str, device: str) -> LoadedHific:
    """Read ``path`` (weights_only), load the 148 core tensors strictly, build the coding tables."""
    import torch

    from cirbench.codecs._hific_coding import hyperlatent_tables, latent_conditional
    from cirbench.codecs._hific_model import HificNetwork

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise CodecError(f"hific: cannot read checkpoint {path}: {exc}") from exc
    core, args = split_checkpoint(checkpoint)
    del checkpoint  # drop the optimizer states (about 2/3 of a released file)
    likelihood, normalize, n_blocks = _settings(level, args)
    wrong_dtype = sorted(k for k, v in core.items() if getattr(v, "dtype", None) != torch.float32)
    if wrong_dtype:
        raise CodecError(f"hific: {path} has non-float32 tensors: {', '.join(wrong_dtype[:5])}")
    with torch.device("meta"):  # no random init of 181M parameters: the checkpoint's tensors are assigned
        network = HificNetwork(n_residual_blocks=n_blocks)
    try:
        network.load_state_dict(core, strict=True, assign=True)
    except RuntimeError as exc:
        raise CodecError(f"hific: {path} does not match the HiFiC architecture: {exc}") from exc
    network = network.eval()
    hyper_coder = hyperlatent_tables(network.Hyperprior.hyperlatent_likelihood)
    return LoadedHific(network.to(device), latent_conditional(likelihood), hyper_coder, likelihood, normalize)


@register_codec
class HificCodec(Codec):
    """HiFiC: GAN-trained encoder/generator with a mean-scale hyperprior; one rANS stream each for y and z."""

    name = "hific"
    max_pixels = 16_777_216
    limit_source = "cirbench bound for learned codecs: peak memory grows with the picture; split larger images"
    kind = "learned"
    file_suffix = ".hfc"
    Params = HificParams

    def _validate(self) -> None:
        if self.params.level not in LEVEL_DEFAULTS:
            raise ConfigError(f"hific level must be one of {', '.join(LEVEL_DEFAULTS)}, got '{self.params.level}'")
        validate_device(self.name, self.params.device)

    @property
    def size_multiple(self) -> int:
        return 16  # the encoder downsamples by 16; latents are reflect-padded to a multiple of 4 internally

    def weight_files(self) -> tuple[str, ...]:
        return () if self.params.checkpoint else (HIFIC_WEIGHTS[self.params.level].filename,)

    def weights_path(self) -> Path:
        """The local checkpoint, or the canonical file from the torch-hub cache; CodecUnavailable if missing."""
        if self.params.checkpoint:
            return local_checkpoint(self.name, self.params.checkpoint)
        spec = HIFIC_WEIGHTS[self.params.level]
        if spec.sha256_prefix:  # only if a checksum is ever published: verified (and downloaded unless offline)
            try:
                return ensure_weight(spec.filename)
            except (WeightsUnavailable, WeightsCorrupt) as exc:
                raise CodecUnavailable(self.name, str(exc), f"cirbench weights import /path/to/{spec.filename}") from exc
        path = cached_path(spec)
        if path.is_file():
            return path
        raise CodecUnavailable(
            self.name,
            f"weights file {spec.filename} (HiFiC {self.params.level}) is not in {path.parent}; it has no published "
            "checksum, so cirbench does not download it",
            f"download {spec.url} (or the Google Drive link in Justin-Tan/high-fidelity-generative-compression's "
            f"README), then run: cirbench weights import /path/to/{spec.filename}",
        )

    def check_available(self) -> None:
        check_device(self.name, self.params.device)
        try:
            import compressai  # noqa: F401  (its rANS coder writes the bitstream)
        except ImportError as exc:
            raise CodecUnavailable(self.name, f"compressai cannot be imported ({exc})", "pip install compressai") from exc
        self.weights_path()

    def tool_versions(self) -> dict[str, str]:
        return learned_tool_versions(self.weights_path())

    def model(self) -> LoadedHific:
        path = self.weights_path()
        key = (self.params.level, str(path.resolve()), self.params.device)
        return _MODELS.get(key, lambda: load_hific(path, self.params.level, self.params.device))

    def _encode(self, rgb: np.ndarray) -> Encoded:
        import torch
        import torch.nn.functional as F

        from cirbench.codecs._hific_coding import channel_indexes, estimated_bits
        from cirbench.codecs._hific_model import round_half_up

        loaded = self.model()
        height, width = rgb.shape[:2]
        if min(height, width) < MIN_CODED_SIDE:  # the port fails at 64 px and below; cirbench edge-pads instead
            extra = ((0, max(0, MIN_CODED_SIDE - height)), (0, max(0, MIN_CODED_SIDE - width)), (0, 0))
            rgb = np.pad(rgb, extra, mode="edge")
        net = loaded.network
        with torch.no_grad():
            x = rgb_to_tensor(rgb, self.params.device)
            y = net.Encoder(x * 2.0 - 1.0 if loaded.normalize_input_image else x)
            pad_h, pad_w = (-y.shape[2]) % 4, (-y.shape[3]) % 4
            if pad_h or pad_w:
                y = F.pad(y, (0, pad_w, 0, pad_h), mode="reflect")
            z_hat = round_half_up(net.Hyperprior.analysis_net(y)).cpu()
            means, scales = (t.cpu() for t in net.hyper_parameters(z_hat.to(self.params.device)))
            y_symbols = round_half_up(y.cpu() - means)
            z_strings = loaded.hyper_coder.compress(z_hat, channel_indexes(z_hat.shape))
            y_strings = loaded.latent_coder.compress(y_symbols, loaded.latent_coder.build_indexes(scales))
            density = net.Hyperprior.hyperlatent_likelihood
            bits = estimated_bits(density, loaded.latent_coder, z_hat.to(self.params.device), y_symbols + means, means, scales)
        shape = (int(z_hat.shape[2]), int(z_hat.shape[3]))
        bitstream = pack_bitstream(MAGIC, shape, [z_strings[0], y_strings[0]])
        stats = {"latent_shape": [int(y.shape[2]), int(y.shape[3])], "estimated_bits": round(bits, 1)}
        return Encoded(bitstream, stats)

    def _decode(self, data: bytes) -> np.ndarray:
        import torch

        from cirbench.codecs._hific_coding import channel_indexes

        (z_height, z_width), strings = unpack_bitstream(data, MAGIC)
        if len(strings) != 2:
            raise CodecError(f"hific: expected 2 coded streams, found {len(strings)}")
        loaded = self.model()
        net = loaded.network
        z_shape = torch.Size((1, net.Hyperprior.hyperlatent_likelihood.H_0.shape[0], z_height, z_width))
        with torch.no_grad():
            z_hat = loaded.hyper_coder.decompress([strings[0]], channel_indexes(z_shape))
            means, scales = (t.cpu() for t in net.hyper_parameters(z_hat.to(self.params.device)))
            y_symbols = loaded.latent_coder.decompress([strings[1]], loaded.latent_coder.build_indexes(scales))
            out = net.Generator((y_symbols + means).to(self.params.device))
            out = (torch.tanh(out) + 1.0) / 2.0 if loaded.normalize_input_image else out
        return tensor_to_rgb(out)
