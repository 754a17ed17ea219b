"""VVC / H.266 all-intra through libvvenc, decoded by ffmpeg's native VVC decoder (cirbench's VTM stand-in).

``-qpa 0`` and ``IntraQPOffset=0`` force the real QP; libvvenc takes only 4:2:0 10-bit (VTM's internal depth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cirbench.codecs import register_codec
from cirbench.codecs._video import FfmpegVideoCodec
from cirbench.errors import ConfigError


@dataclass(frozen=True)
class VvcParams:
    qp: int = 37
    preset: str = "medium"
    chroma: str = "420"
    bit_depth: int = 10
    matrix: str = "bt601"
    range: str = "limited"
    threads: int = 1
    strip_sei: bool = True
    pad_multiple: int = 8


@register_codec
class VvcCodec(FfmpegVideoCodec):
    """One intra frame of VVC Main 10 at a fixed QP (Fraunhofer VVenC)."""

    name = "vvc"
    max_side = 25332
    max_pixels = 80_216_064
    limit_source = "VVC level 6.3: MaxLumaPs 80,216,064, sides <= sqrt(8 MaxLumaPs)"
    file_suffix = ".vvc"
    Params = VvcParams
    encoder = "libvvenc"
    stream_format = "vvc"
    sei_nal_types = "23|24"
    qp_max = 63
    log_qp_pattern = r"I-SLICE, QP\s+(\d+)"
    encode_loglevel = "verbose"

    def _validate(self) -> None:
        super()._validate()
        if (self.params.chroma, self.params.bit_depth) != ("420", 10):
            raise ConfigError("libvvenc in this ffmpeg accepts only 4:2:0 10-bit (yuv420p10le)")

    def encoder_options(self) -> dict[str, Any]:
        p = self.params
        return {
            "preset": p.preset,
            "qp": p.qp,
            "qpa": 0,
            "vvenc-params": "IntraPeriod=1:IntraQPOffset=0",
        }
