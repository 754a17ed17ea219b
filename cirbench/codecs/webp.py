"""Lossy WebP (VP8) through Pillow's libwebp, with quality and method pinned.

The encoder's ``method`` changes the bitstream (q1: method 4 and 6 differ by 7 %), so it is a recorded parameter.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import PIL
from PIL import Image, features

from cirbench.codecs import register_codec
from cirbench.codecs._base import Codec, Encoded
from cirbench.errors import CodecError, ConfigError


@dataclass(frozen=True)
class WebpParams:
    quality: int = 75
    method: int = 4
    lossless: bool = False


@register_codec
class WebpCodec(Codec):
    """WebP lossy coding (RIFF container, VP8 bitstream) as written by libwebp through Pillow."""

    name = "webp"
    max_side = 16383
    limit_source = "WebP format: 14-bit width and height"
    file_suffix = ".webp"
    Params = WebpParams

    def _validate(self) -> None:
        if not 0 <= self.params.quality <= 100:
            raise ConfigError(f"webp quality {self.params.quality} is outside 0..100")
        if not 0 <= self.params.method <= 6:
            raise ConfigError(f"webp method {self.params.method} is outside 0..6")
        if not features.check("webp"):
            raise ConfigError("this Pillow build has no WebP support")

    def tool_versions(self) -> dict[str, str]:
        return {"Pillow": PIL.__version__, "libwebp": str(features.version("webp"))}

    def _encode(self, rgb: np.ndarray) -> Encoded:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(
            buffer,
            format="WEBP",
            quality=self.params.quality,
            method=self.params.method,
            lossless=self.params.lossless,
            exact=False,
        )
        return Encoded(buffer.getvalue())

    def _decode(self, data: bytes) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except OSError as exc:
            raise CodecError(f"webp: cannot decode bitstream: {exc}") from exc
