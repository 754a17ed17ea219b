"""Evaluation protocols: which region of each (HR, LQ) pair a model restores and the metrics score.

`full` keeps the whole image; `crop256` is MoE-DiffIR's test-time crop made exact (no resampling); `resize256` is
the release's own geometry (resampled), applied to HR and LQ alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cirbench.errors import CirbenchError

PREVIEW_SIZE = 128


class ProtocolError(CirbenchError):
    """An unknown protocol, or an image a protocol cannot be applied to."""


@dataclass(frozen=True)
class Box:
    """A pixel rectangle: rows top..top+height, columns left..left+width."""

    top: int
    left: int
    height: int
    width: int

    def cut(self, rgb: np.ndarray) -> np.ndarray:
        return rgb[self.top : self.top + self.height, self.left : self.left + self.width]


@dataclass(frozen=True)
class Protocol:
    """A named evaluated region: a pixel box cut from every image (``box``), or a resampled copy (``resample``)."""

    name: str
    description: str
    box: Callable[[int, int, str], Box] | None = None  # (height, width, image) -> the box cut from HR and LQ alike
    resample: Callable[[np.ndarray, str], np.ndarray] | None = None  # (rgb, image) -> the resampled region
    resampled_shape: tuple[int, int] = (0, 0)

    def region(self, rgb: np.ndarray, image: str = "") -> np.ndarray:
        """The evaluated array of one HR or LQ image [H, W, 3] uint8."""
        if self.resample is not None:
            return self.resample(rgb, image)
        return self.box(rgb.shape[0], rgb.shape[1], image).cut(rgb)

    def region_shape(self, height: int, width: int, image: str = "") -> tuple[int, int]:
        if self.resample is not None:
            return self.resampled_shape
        box = self.box(height, width, image)
        return (box.height, box.width)


def full_box(height: int, width: int, image: str = "") -> Box:
    return Box(0, 0, height, width)


def crop256_box(height: int, width: int, image: str = "") -> Box:
    """Round each side down to a multiple of 32 (keeping the top-left), then take the centre 256x256.

    Both the HR and the LQ image are cut with this same box; nothing is resized.
    """
    height32, width32 = height // 32 * 32, width // 32 * 32
    if height32 < 256 or width32 < 256:
        raise ProtocolError(
            f"image {image or ''} is {height}x{width}: protocol crop256 needs both sides >= 256 (use --protocol full)"
        )
    return Box((height32 - 256) // 2, (width32 - 256) // 2, 256, 256)


def resize256(rgb: np.ndarray, image: str = "") -> np.ndarray:
    """MoE-DiffIR's test.py geometry: sides resized (PIL Lanczos) down to multiples of 32, the short side resized to
    256 as its pinned torchvision 0.13 does on tensors (bilinear, no antialiasing), the centre 256x256 cut
    (torchvision's rounding), rounded back to 8 bits."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    height, width = rgb.shape[:2]
    if height < 32 or width < 32:
        raise ProtocolError(f"image {image or ''} is {height}x{width}: protocol resize256 needs both sides >= 32")
    if height % 32 or width % 32:
        rgb = np.asarray(Image.fromarray(rgb).resize((width // 32 * 32, height // 32 * 32), Image.Resampling.LANCZOS))
    h, w = rgb.shape[:2]
    size = (int(256 * h / w), 256) if w <= h else (256, int(256 * w / h))
    tensor = torch.from_numpy(np.array(rgb, dtype=np.float64)).permute(2, 0, 1)[None]
    resized = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False, antialias=False)
    top, left = int(round((size[0] - 256) / 2.0)), int(round((size[1] - 256) / 2.0))
    crop = resized[0, :, top : top + 256, left : left + 256].permute(1, 2, 0)
    return crop.round().clamp(0, 255).to(torch.uint8).numpy()


PROTOCOLS: dict[str, Protocol] = {
    "full": Protocol("full", "whole image; padded (reflect) to the model's size multiple and cropped back", full_box),
    "crop256": Protocol(
        "crop256",
        "MoE-DiffIR test crop: sides rounded down to multiples of 32 (top-left kept), centre 256x256 of HR and LQ",
        crop256_box,
    ),
    "resize256": Protocol(
        "resize256",
        "MoE-DiffIR's test.py geometry: sides resized (Lanczos) down to multiples of 32, short side resized to 256 "
        "(bilinear, as torchvision 0.13 on tensors), centre 256x256; HR and LQ resampled alike",
        resample=resize256,
        resampled_shape=(256, 256),
    ),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ProtocolError(f"unknown protocol '{name}' (known: {', '.join(PROTOCOLS)})") from None


def preview_box(height: int, width: int, size: int = PREVIEW_SIZE) -> Box:
    """The centre crop (at most size x size) of an evaluated region that the report shows side by side."""
    crop_h, crop_w = min(size, height), min(size, width)
    return Box((height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)
