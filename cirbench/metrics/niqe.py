"""NIQE (Mittal et al. 2013), no-reference, lower is better: MATLAB's niqe.m as BasicSR's calculate_niqe computes it.

Y (BT.601, rounded), 96x96 blocks, two scales (MATLAB bicubic /2), AGGD features, distance to the pristine MVG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cirbench.metrics import METRICS, MetricError, MetricInfo, NoReferenceMetric
from cirbench.metrics._base import crop
from cirbench.metrics._niqe_math import BLOCK, niqe_distance, niqe_features
from cirbench.metrics.color import STUDIO_Y_OFFSET, STUDIO_Y_WEIGHTS, rgb_to_y_studio
from cirbench.weights.catalogue import NIQE_PRISTINE
from cirbench.weights.layouts import Layout, TensorSpec, register_layout
from cirbench.weights.manager import ensure_weight

Y_PATHS = ("basicsr", "matlab")
PRECISIONS = ("float32", "float64")  # float32: BasicSR's arithmetic (default); float64: MATLAB's double, batched

register_layout(
    NIQE_PRISTINE.filename,
    lambda: Layout({"mu_pris_param": TensorSpec((1, 36), "float64"), "cov_pris_param": TensorSpec((36, 36), "float64"),
                    "gaussian_window": TensorSpec((7, 7), "float64")}, note="numpy .npz (allow_pickle off)"),
)  # fmt: skip


def basicsr_y(rgb255: torch.Tensor) -> torch.Tensor:
    """BasicSR's Y: BGR/255 in float32, dotted with the BT.601 weights in float64, /255 to float32, x255, rounded.

    It equals MATLAB's rgb2ycbcr on uint8 except where float32 rounding crosses a .5 (a few pixels per image).
    """
    unit = (rgb255.to(torch.float32) / 255.0).to(torch.float64)
    weights = torch.tensor(STUDIO_Y_WEIGHTS, dtype=torch.float64, device=rgb255.device)
    y = torch.einsum("bchw,c->bhw", unit, weights).unsqueeze(1) + STUDIO_Y_OFFSET
    return ((y / 255.0).to(torch.float32) * 255.0).round().to(torch.float64)


@METRICS.register("niqe")
class NIQE(NoReferenceMetric):
    """Natural Image Quality Evaluator per image (lower is better); images under 96x96 after cropping are refused."""

    info = MetricInfo(
        name="niqe",
        higher_better=False,
        range=(0.0, float("inf")),
        needs_weights=True,
        kind="paired",
        description="NIQE (MATLAB niqe.m / BasicSR calculate_niqe): rounded BT.601 Y, 96x96 blocks, 2 scales",
        weight_files=(NIQE_PRISTINE.filename,),
        no_reference=True,
    )

    def __init__(
        self, device: str = "cpu", crop_border: int = 0, y_path: str = "basicsr", precision: str = "float32",
        params: Any = None, download: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(device)
        if y_path not in Y_PATHS:
            raise MetricError(f"NIQE y_path must be one of {', '.join(Y_PATHS)}, got '{y_path}'")
        if precision not in PRECISIONS:
            raise MetricError(f"NIQE precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
        self.crop_border, self.y_path, self.precision = int(crop_border), y_path, precision
        arrays, source = self._params(params, download)
        self._mu, self._cov, self._window = (
            torch.as_tensor(arrays[key], dtype=torch.float64, device=self.device)
            for key in ("mu_pris_param", "cov_pris_param", "gaussian_window")
        )
        self._mu = self._mu.reshape(-1)
        self._arrays = arrays
        self._record(crop_border=self.crop_border, y_path=y_path, precision=precision, block_size=BLOCK, scales=2, params=source,
                     params_sha256_prefix=NIQE_PRISTINE.sha256_prefix if params is None else None)  # fmt: skip

    @staticmethod
    def _params(params: Any, download: bool) -> tuple[dict[str, np.ndarray], str]:
        if isinstance(params, dict):
            return params, "in-memory parameters"
        path = ensure_weight(NIQE_PRISTINE.filename, download=download) if params is None else params
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return {key: arrays[key] for key in arrays.files}, str(path) if params is not None else NIQE_PRISTINE.filename
        except (OSError, ValueError) as exc:
            raise MetricError(f"cannot read NIQE parameters from {path}: {exc}") from exc

    def luma(self, images: torch.Tensor) -> torch.Tensor:
        """[B,1,H,W] rounded Y on 0..255 of [0,1] RGB images, border cropped (per-pixel rounding: order is immaterial)."""
        rgb255 = torch.round(images.to(torch.float64) * 255.0)
        y = basicsr_y(rgb255) if self.y_path == "basicsr" else rgb_to_y_studio(rgb255, round_y=True)  # MATLAB uint8
        return crop(y, self.crop_border)

    def compute_images(self, images: torch.Tensor) -> torch.Tensor:
        y = self.luma(images)
        h, w = (y.shape[-2] // BLOCK) * BLOCK, (y.shape[-1] // BLOCK) * BLOCK
        if not h or not w:
            raise MetricError(f"NIQE needs at least {BLOCK}x{BLOCK} pixels after cropping, got {tuple(y.shape[-2:])}")
        if self.precision == "float32":  # BasicSR's arithmetic, one image at a time on the CPU
            from cirbench.metrics._niqe_float32 import niqe32

            mu, cov, window = (self._arrays[k] for k in ("mu_pris_param", "cov_pris_param", "gaussian_window"))
            planes = y[:, 0].to(torch.float32).cpu().numpy()
            return torch.tensor([niqe32(plane, mu, cov, window) for plane in planes], dtype=torch.float64)
        return niqe_distance(niqe_features(y[..., :h, :w], self._window), self._mu, self._cov)
