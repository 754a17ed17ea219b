"""Named metric profiles, so that a user can match the convention of a paper or a library with one word.

Each profile lists (result name, metric, options); the profile name is stored with every result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cirbench.errors import UnknownNameError


@dataclass(frozen=True)
class MetricSpec:
    """One column of a profile: ``result_name`` computed by registered ``metric`` built with ``options``."""

    result_name: str
    metric: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    metrics: tuple[MetricSpec, ...]

    def spec(self, result_name: str) -> MetricSpec:
        for spec in self.metrics:
            if spec.result_name == result_name:
                return spec
        raise UnknownNameError(f"profile '{self.name}' has no result '{result_name}'")


_RGB = {"channel": "rgb", "crop_border": 0}
_Y = {"channel": "y", "crop_border": 0}
_PYIQA_Y = {"channel": "y_full_f32", "crop_border": 0, "round_y": True, "clip_cs_map": True}

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "cirbench",
            "cirbench default: PSNR and SSIM on RGB (8-bit, per image, averaged), LPIPS v0.1 alex on [0,1]->[-1,1], "
            "FID/256 and KID/256 on 256 px patches (HiFiC protocol) with pytorch-fid's Inception.",
            (
                MetricSpec("psnr", "psnr", dict(_RGB)),
                MetricSpec("ssim", "ssim", dict(_RGB)),
                MetricSpec("lpips", "lpips", {"net": "alex", "version": "0.1"}),
                MetricSpec("patch_fid", "patch_fid", {"patch_size": 256}),
                MetricSpec("kid", "kid", {"patch_size": 256, "subsets": 100, "subset_size": 1000, "seed": 0}),
            ),
        ),
        Profile(
            "basicsr-y",
            "BasicSR / SR and CAR papers: PSNR and SSIM on BT.601 studio-swing Y (MATLAB rgb2ycbcr, Y kept as float "
            "like BasicSR), crop border 0; use round_y for MATLAB's uint8 Y.",
            (
                MetricSpec("psnr_y", "psnr", dict(_Y)),
                MetricSpec("ssim_y", "ssim", dict(_Y)),
            ),
        ),
        Profile(
            "matlab-y",
            "MATLAB evaluation scripts: as basicsr-y but Y rounded to uint8 as rgb2ycbcr does on uint8 input.",
            (
                MetricSpec("psnr_y", "psnr", {**_Y, "round_y": True}),
                MetricSpec("ssim_y", "ssim", {**_Y, "round_y": True}),
            ),
        ),
        Profile(
            "car",
            "JPEG artefact removal papers (KAIR, FBCNN, SwinIR): PSNR, SSIM and PSNR-B (B=8) on BT.601 Y, border 0.",
            (
                MetricSpec("psnr_y", "psnr", dict(_Y)),
                MetricSpec("ssim_y", "ssim", dict(_Y)),
                MetricSpec("psnrb_y", "psnrb", dict(_Y)),
            ),
        ),
        Profile(
            "pyiqa",
            "IQA-PyTorch (pyiqa 0.1.16) defaults, reproduced within 1e-6 and tested against pyiqa itself: psnr on RGB "
            "in pyiqa's float32 arithmetic with its 1e-8 added to the [0,1] MSE; ssim and ms_ssim on full-range luma (its 'yiq' Y) computed in "
            "float32 and rounded to whole 8-bit values as pyiqa does, with its per-pixel ReLU on the SSIM cs map; "
            "lpips alex on [0,1].",
            (
                MetricSpec("psnr", "psnr", {**_RGB, "mse_epsilon": 1e-8, "float32": True}),
                MetricSpec("ssim", "ssim", dict(_PYIQA_Y)),
                MetricSpec("ms_ssim", "ms_ssim", dict(_PYIQA_Y)),
                MetricSpec("lpips", "lpips", {"net": "alex", "version": "0.1"}),
            ),
        ),
        Profile(
            "moe-diffir",
            "MoE-DiffIR (ECCV 2024) tables: PSNR, SSIM, LPIPS, FID. The paper states no implementation; its release "
            "pins pyiqa 0.1.10 and pytorch-fid 0.3.0, so this is pyiqa's psnr (RGB, float32, +1e-8) and ssim "
            "(rounded full-range luma), LPIPS alex and whole-image FID (pytorch-fid Inception pool3). Inferred, not "
            "confirmed by the authors.",
            (
                MetricSpec("psnr", "psnr", {**_RGB, "mse_epsilon": 1e-8, "float32": True}),
                MetricSpec("ssim", "ssim", dict(_PYIQA_Y)),
                MetricSpec("lpips", "lpips", {"net": "alex", "version": "0.1"}),
                MetricSpec("fid", "fid", {}),
            ),
        ),
        Profile(
            "sspir",
            "SeeSR / SSP-IR / SUPIR-line tables: PSNR and SSIM on BT.601 Y (BasicSR/MATLAB convention, border 0), "
            "LPIPS alex, DISTS, whole-image FID, NIQE (BasicSR), and pyiqa's MUSIQ (KonIQ), MANIQA (KonIQ) and "
            "CLIP-IQA (these three need the [iqa] extra and pyiqa's weights).",
            (
                MetricSpec("psnr_y", "psnr", dict(_Y)),
                MetricSpec("ssim_y", "ssim", dict(_Y)),
                MetricSpec("lpips", "lpips", {"net": "alex", "version": "0.1"}),
                MetricSpec("dists", "dists", {}),
                MetricSpec("fid", "fid", {}),
                MetricSpec("niqe", "niqe", {}),
                MetricSpec("musiq", "pyiqa:musiq", {}),
                MetricSpec("maniqa", "pyiqa:maniqa", {}),
                MetricSpec("clipiqa", "pyiqa:clipiqa", {}),
            ),
        ),
        Profile(
            "compressai",
            "CompressAI eval_model: PSNR and MS-SSIM on RGB (pytorch_msssim convention).",
            (
                MetricSpec("psnr", "psnr", dict(_RGB)),
                MetricSpec("ms_ssim", "ms_ssim", dict(_RGB)),
            ),
        ),
    )
}

ALIASES = {"seesr": "sspir"}  # SSP-IR follows SeeSR's table convention
DEFAULT_PROFILE = "cirbench"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; UnknownNameError listing the known ones otherwise."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PROFILES:
        raise UnknownNameError(f"unknown metric profile '{name}' (known: {', '.join(PROFILES)})")
    return PROFILES[key]


def flatten_set_result(result_name: str, metric_name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Name the values of a distribution metric's ``compute()`` as stored in results.

    The first value is the headline, stored under the result name (fid, kid); the others (kid_std, sample
    counts) become ``<result>_<key>`` with a leading ``<metric>_`` of the key dropped.
    """
    flat: dict[str, Any] = {}
    for index, (key, value) in enumerate(result.items()):
        flat[result_name if index == 0 else f"{result_name}_{key.removeprefix(metric_name + '_')}"] = value
    return flat


def select_specs(profile: str, metrics: Sequence[str] | None) -> list[MetricSpec]:
    """The profile's specs, or only those named (by result or metric name); other names use metric defaults."""
    chosen = get_profile(profile)
    if not metrics:
        return list(chosen.metrics)
    specs = []
    for name in metrics:
        match = [s for s in chosen.metrics if name in (s.result_name, s.metric)]
        specs.append(match[0] if match else MetricSpec(name, name, {}))
    return specs
