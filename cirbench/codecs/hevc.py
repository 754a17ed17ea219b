"""HEVC / H.265 all-intra through libx265 in imageio-ffmpeg's static ffmpeg (cirbench's HM stand-in).

``ipratio=1`` keeps the intra frame at the requested QP (x265 otherwise codes it at QP-3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cirbench.codecs import register_codec
from cirbench.codecs._video import FfmpegVideoCodec


@dataclass(frozen=True)
class HevcParams:
    qp: int = 37
    preset: str = "medium"
    chroma: str = "420"
    bit_depth: int = 8
    matrix: str = "bt601"
    range: str = "limited"
    threads: int = 1
    wpp: bool = False
    strip_sei: bool = True
    pad_multiple: int = 8


@register_codec
class HevcCodec(FfmpegVideoCodec):
    """One intra frame of HEVC Main / Main 4:4:4 at a fixed QP (libx265)."""

    name = "hevc"
    max_side = 16888
    max_pixels = 35_651_584
    limit_source = "HEVC level 6.2: MaxLumaPs 35,651,584, sides <= sqrt(8 MaxLumaPs)"
    file_suffix = ".hevc"
    Params = HevcParams
    encoder = "libx265"
    stream_format = "hevc"
    sei_nal_types = "39|40"
    log_qp_pattern = r"frame I:\s*\d+, Avg QP:\s*([\d.]+)"

    def encoder_options(self) -> dict[str, Any]:
        p = self.params
        x265 = [
            f"qp={p.qp}",
            "keyint=1",
            "ipratio=1",
            "pools=" + str(p.threads),
            "frame-threads=1",
            f"wpp={int(p.wpp)}",
            "info=0",
        ]
        return {"preset": p.preset, "x265-params": ":".join(x265)}
