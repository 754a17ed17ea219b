"""JPEG through Pillow's libjpeg-turbo: baseline, standard IJG tables, pinned chroma subsampling.

Quality and subsampling are parameters; optimisation and progressive mode are pinned off and recorded.
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

_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


@dataclass(frozen=True)
class JpegParams:
    quality: int = 75
    subsampling: str = "4:2:0"
    optimize: bool = False
    progressive: bool = False


@register_codec
class JpegCodec(Codec):
    """Baseline JPEG (ITU T.81) as written by libjpeg-turbo through Pillow."""

    name = "jpeg"
    max_side = 65500
    limit_source = "libjpeg-turbo JPEG_MAX_DIMENSION"
    file_suffix = ".jpg"
    Params = JpegParams

    def _validate(self) -> None:
        if not 1 <= self.params.quality <= 100:
            raise ConfigError(f"jpeg quality {self.params.quality} is outside 1..100")
        if self.params.subsampling not in _SUBSAMPLING:
            raise ConfigError(f"jpeg subsampling must be one of {sorted(_SUBSAMPLING)}")

    def tool_versions(self) -> dict[str, str]:
        return {"Pillow": PIL.__version__, "libjpeg-turbo": str(features.version("libjpeg_turbo"))}

    def _encode(self, rgb: np.ndarray) -> Encoded:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(
            buffer,
            format="JPEG",
            quality=self.params.quality,
            subsampling=_SUBSAMPLING[self.params.subsampling],
            optimize=self.params.optimize,
            progressive=self.params.progressive,
        )
        return Encoded(buffer.getvalue())

    def _decode(self, data: bytes) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
        except OSError as exc:
            raise CodecError(f"jpeg: cannot decode bitstream: {exc}") from exc
