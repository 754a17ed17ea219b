"""Shared machinery of the all-intra video codecs (HEVC, AVC, VVC) run through the static ffmpeg.

RGB is converted to Y'CbCr by cirbench (explicit matrix, range, depth, rounding), coded as one intra
frame at a forced QP, SEI messages are stripped so bpp counts only coded data, and decoded by the same binary.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Any, ClassVar

import ffmpeg
import numpy as np

from cirbench.codecs._base import Codec, Encoded
from cirbench.codecs._ffmpeg import ffmpeg_versions, has_encoder, probe_size, run_ffmpeg
from cirbench.codecs._yuv import YuvFormat, planes_to_raw, planes_to_rgb, raw_to_planes, rgb_to_planes
from cirbench.errors import CodecUnavailable, ConfigError

# ITU-T H.273 code points for the VUI colour description of each matrix.
_VUI = {
    "bt601": {"colorspace": "smpte170m", "color_primaries": "smpte170m", "color_trc": "smpte170m"},
    "bt709": {"colorspace": "bt709", "color_primaries": "bt709", "color_trc": "bt709"},
}


class FfmpegVideoCodec(Codec):
    """Base of the ffmpeg-driven intra codecs; subclasses give the encoder and its forced-QP options."""

    encoder: ClassVar[str]
    stream_format: ClassVar[str]
    sei_nal_types: ClassVar[str]
    qp_max: ClassVar[int] = 51
    log_qp_pattern: ClassVar[str]
    encode_loglevel: ClassVar[str] = "info"

    def _validate(self) -> None:
        params = self.params
        if not 0 <= params.qp <= self.qp_max:
            raise ConfigError(f"{self.name} qp {params.qp} is outside 0..{self.qp_max}")
        if params.threads < 1:
            raise ConfigError(f"{self.name} threads must be >= 1")
        self.yuv_format  # noqa: B018  (validates matrix, range, depth, chroma)

    @property
    def yuv_format(self) -> YuvFormat:
        p = self.params
        return YuvFormat(matrix=p.matrix, range=p.range, bit_depth=p.bit_depth, chroma=p.chroma)

    @property
    def size_multiple(self) -> int:
        return max(self.yuv_format.size_multiple, self.params.pad_multiple)

    def check_available(self) -> None:
        if not has_encoder(self.encoder):
            raise CodecUnavailable(self.name, f"the bundled ffmpeg has no {self.encoder} encoder")

    def tool_versions(self) -> dict[str, str]:
        return dict(ffmpeg_versions())

    @abstractmethod
    def encoder_options(self) -> dict[str, Any]:
        """ffmpeg output options that select the encoder and force the real QP of the intra frame."""

    def _output_options(self) -> dict[str, Any]:
        fmt = self.yuv_format
        options: dict[str, Any] = {
            "format": self.stream_format,
            "vcodec": self.encoder,
            "pix_fmt": fmt.pix_fmt,
            "threads": self.params.threads,
            "frames:v": 1,
            "color_range": "tv" if fmt.range == "limited" else "pc",
            **_VUI[fmt.matrix],
            **self.encoder_options(),
        }
        if self.params.strip_sei:
            options["bsf:v"] = f"filter_units=remove_types={self.sei_nal_types}"
        return options

    def _encode(self, rgb: np.ndarray) -> Encoded:
        fmt = self.yuv_format
        height, width = rgb.shape[:2]
        raw = planes_to_raw(rgb_to_planes(rgb, fmt))
        source = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=fmt.pix_fmt, s=f"{width}x{height}", framerate=1)
        options = self._output_options()
        bitstream, log = run_ffmpeg(
            lambda path: ffmpeg.output(source, path, **options), raw, f"{self.name} encode", self.encode_loglevel
        )
        return Encoded(bitstream, self.parse_log(log))

    def parse_log(self, log: str) -> dict[str, Any]:
        """What the encoder reported: the QP it really used for the intra slice."""
        match = re.search(self.log_qp_pattern, log)
        return {"encoder_qp": float(match.group(1))} if match else {}

    def _decode(self, data: bytes) -> np.ndarray:
        fmt = self.yuv_format
        source = ffmpeg.input("pipe:", format=self.stream_format)
        options = {"format": "rawvideo", "pix_fmt": fmt.pix_fmt, "frames:v": 1}
        raw, log = run_ffmpeg(lambda path: ffmpeg.output(source, path, **options), data, f"{self.name} decode")
        height, width = probe_size(log)
        return planes_to_rgb(*raw_to_planes(raw, height, width, fmt), fmt)
