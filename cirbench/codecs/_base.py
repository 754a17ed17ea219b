"""The Codec contract: typed parameters, encode/decode of 8-bit RGB, tool versions, padding.

Each adapter is one small subclass in its own module, registered by name in CODECS.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from cirbench.errors import CodecError, ConfigError


@dataclass(frozen=True)
class Encoded:
    """A bitstream plus what the encoder itself reported (e.g. the real QP read from its log)."""

    bitstream: bytes
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundTrip:
    """Result of encoding and decoding one image: bytes, decoded pixels, timings, padding."""

    bitstream: bytes
    decoded: np.ndarray
    encode_seconds: float
    decode_seconds: float
    padded_height: int
    padded_width: int
    stats: dict[str, Any]


def pad_edge(rgb: np.ndarray, multiple: int) -> np.ndarray:
    """Pad bottom/right by edge replication so both sides are multiples of ``multiple``."""
    height, width = rgb.shape[:2]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return rgb
    return np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise CodecError(f"codecs take uint8 HxWx3 RGB arrays, got {dtype} {shape}")


class Codec(ABC):
    """One encoder/decoder pair at one setting.

    Subclasses set ``name`` and ``Params`` (a frozen dataclass whose fields, with defaults, are every
    option of the codec) and implement ``_encode``, ``_decode`` and ``tool_versions``.
    """

    name: ClassVar[str]
    kind: ClassVar[str] = "traditional"
    file_suffix: ClassVar[str] = ".bin"
    Params: ClassVar[type]
    # Size limits of the coded (padded) picture: checked before encoding, so an oversized image fails as one
    # entry with the limit named instead of crashing inside the encoder. None = no limit.
    max_side: ClassVar[int | None] = None
    max_pixels: ClassVar[int | None] = None
    limit_source: ClassVar[str] = ""

    def weight_files(self) -> tuple[str, ...]:
        """Canonical weight files this setting loads (none for the traditional codecs)."""
        return ()

    def __init__(self, **options: Any) -> None:
        allowed = {f.name for f in dataclasses.fields(self.Params)}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(
                f"codec '{self.name}' has no option(s) {', '.join(unknown)} (options: {', '.join(sorted(allowed))})"
            )
        try:
            self.params = self.Params(**options)
        except TypeError as exc:
            raise ConfigError(f"codec '{self.name}': {exc}") from exc
        self._validate()

    def _validate(self) -> None:  # noqa: B027  (optional hook)
        """Raise ConfigError for out-of-range options (subclasses override)."""

    def parameters(self) -> dict[str, Any]:
        """Every option of this codec, defaults included, as plain JSON-able values."""
        return dataclasses.asdict(self.params)

    @property
    def size_multiple(self) -> int:
        """Both sides are padded to a multiple of this before encoding (1: any size)."""
        return 1

    def check_available(self) -> None:  # noqa: B027  (optional hook: most codecs are always available)
        """Raise CodecUnavailable if this codec cannot run here; return None if it can."""

    @abstractmethod
    def tool_versions(self) -> dict[str, str]:
        """Exact versions of the libraries and binaries doing the work."""

    @property
    def description(self) -> str:
        versions = ", ".join(f"{k} {v}" for k, v in self.tool_versions().items())
        return f"{self.name} ({versions})"

    @abstractmethod
    def _encode(self, rgb: np.ndarray) -> Encoded:
        """Encode an RGB array whose sides are already multiples of ``size_multiple``."""

    @abstractmethod
    def _decode(self, data: bytes) -> np.ndarray:
        """Decode a bitstream to uint8 RGB at its coded size."""

    def check_size(self, height: int, width: int) -> None:
        """CodecError naming the limit when a (padded) picture of this size cannot be coded."""
        where = f" ({self.limit_source})" if self.limit_source else ""
        if self.max_side is not None and max(height, width) > self.max_side:
            raise CodecError(
                f"{self.name}: {width}x{height} exceeds the codec's limit of {self.max_side} pixels per side{where}"
            )
        if self.max_pixels is not None and height * width > self.max_pixels:
            raise CodecError(
                f"{self.name}: {width}x{height} = {height * width} pixels exceeds the codec's limit of "
                f"{self.max_pixels} pixels{where}"
            )

    def _padded(self, rgb: np.ndarray) -> np.ndarray:
        check_rgb(rgb)
        height, width = rgb.shape[:2]
        multiple = self.size_multiple
        self.check_size(-(-height // multiple) * multiple, -(-width // multiple) * multiple)
        return pad_edge(rgb, multiple)

    def encode_detailed(self, rgb: np.ndarray) -> Encoded:
        return self._encode(self._padded(rgb))

    def encode(self, rgb: np.ndarray) -> bytes:
        """Bitstream of ``rgb`` (uint8 HxWx3); padded by edge replication if the codec needs it."""
        return self.encode_detailed(rgb).bitstream

    def decode(self, data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 HxWx3 RGB of a bitstream, cropped to ``size`` = (height, width) when given."""
        rgb = self._decode(data)
        if size is not None:
            height, width = size
            if rgb.shape[0] < height or rgb.shape[1] < width:
                raise CodecError(f"{self.name}: decoded {rgb.shape[:2]} is smaller than the source {size}")
            rgb = rgb[:height, :width]
        return np.ascontiguousarray(rgb)

    def roundtrip(self, rgb: np.ndarray) -> RoundTrip:
        """Encode then decode, timing both; the decoded image has the source's size."""
        height, width = rgb.shape[:2]
        padded = self._padded(rgb)
        start = time.perf_counter()
        encoded = self._encode(padded)
        middle = time.perf_counter()
        decoded = self.decode(encoded.bitstream, size=(height, width))
        end = time.perf_counter()
        return RoundTrip(
            bitstream=encoded.bitstream,
            decoded=decoded,
            encode_seconds=middle - start,
            decode_seconds=end - middle,
            padded_height=int(padded.shape[0]),
            padded_width=int(padded.shape[1]),
            stats=dict(encoded.stats),
        )
