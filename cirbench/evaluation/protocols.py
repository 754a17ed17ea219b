"""Evaluation protocols: which region of each (HR, LQ) pair a model restores and the metrics score.

`full` keeps the whole image; `crop256` is MoE-DiffIR's test-time crop made exact (no resampling).
"""

from __future__ import annotations

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
    name: str
    description: str

    def box(self, height: int, width: int, image: str = "") -> Box:
        if self.name == "full":
            return Box(0, 0, height, width)
        return crop256_box(height, width, image)


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


PROTOCOLS: dict[str, Protocol] = {
    "full": Protocol("full", "whole image; padded (reflect) to the model's size multiple and cropped back"),
    "crop256": Protocol(
        "crop256",
        "MoE-DiffIR test crop: sides rounded down to multiples of 32 (top-left kept), centre 256x256 of HR and LQ",
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
