"""AVC / H.264 all-intra through libx264 in imageio-ffmpeg's static ffmpeg (the unseen-task codec).

``ipratio=1`` keeps the intra frame at the requested QP; AVC stays 8-bit (10-bit x264 QP is another scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cirbench.codecs import register_codec
from cirbench.codecs._video import FfmpegVideoCodec
from cirbench.errors import ConfigError


@dataclass(frozen=True)
class AvcParams:
    qp: int = 37
    preset: str = "medium"
    chroma: str = "420"
    bit_depth: int = 8
    matrix: str = "bt601"
    range: str = "limited"
    threads: int = 1
    strip_sei: bool = True
    pad_multiple: int = 2


@register_codec
class AvcCodec(FfmpegVideoCodec):
    """One intra frame of H.264 High / High 4:4:4 Predictive at a fixed QP (libx264)."""

    name = "avc"
    max_side = 16880
    max_pixels = 35_651_584
    limit_source = "H.264 level 6.2: MaxFS 139,264 macroblocks, sides <= sqrt(8 MaxFS) macroblocks"
    file_suffix = ".h264"
    Params = AvcParams
    encoder = "libx264"
    stream_format = "h264"
    sei_nal_types = "6"
    log_qp_pattern = r"frame I:\s*\d+\s+Avg QP:\s*([\d.]+)"

    def _validate(self) -> None:
        super()._validate()
        if self.params.bit_depth != 8:
            raise ConfigError("avc is 8-bit only here: 10-bit x264 QPs are on a different scale")

    def encoder_options(self) -> dict[str, Any]:
        p = self.params
        return {"preset": p.preset, "qp": p.qp, "x264-params": "keyint=1:ipratio=1:sliced-threads=0"}
