"""RGB <-> Y'CbCr conversions for the video codecs, with explicit matrix, range, depth and chroma format.

Everything is computed in float64 and rounded once (never truncated), so an 8-bit RGB image survives a
10-bit 4:4:4 round trip exactly; 4:2:0 chroma uses a 2x2 box filter down and centre-sited bilinear up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cirbench.errors import ConfigError

# (Kr, Kb) luma coefficients of ITU-R BT.601 and BT.709.
MATRICES: dict[str, tuple[float, float]] = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
CHROMA_FORMATS = ("420", "444")


@dataclass(frozen=True)
class YuvFormat:
    """How an RGB image becomes planes: matrix, range ('limited' or 'full'), bit depth, chroma format."""

    matrix: str = "bt601"
    range: str = "limited"
    bit_depth: int = 8
    chroma: str = "420"

    def __post_init__(self) -> None:
        if self.matrix not in MATRICES:
            raise ConfigError(f"colour matrix '{self.matrix}' is not one of {sorted(MATRICES)}")
        if self.range not in ("limited", "full"):
            raise ConfigError(f"colour range '{self.range}' must be 'limited' or 'full'")
        if self.bit_depth not in (8, 10):
            raise ConfigError(f"bit depth {self.bit_depth} must be 8 or 10")
        if self.chroma not in CHROMA_FORMATS:
            raise ConfigError(f"chroma format '{self.chroma}' must be one of {CHROMA_FORMATS}")

    @property
    def pix_fmt(self) -> str:
        """The matching ffmpeg raw pixel format."""
        suffix = "" if self.bit_depth == 8 else "10le"
        return f"yuv{self.chroma}p{suffix}"

    @property
    def sample_dtype(self) -> type:
        return np.uint8 if self.bit_depth == 8 else np.dtype("<u2").type

    @property
    def size_multiple(self) -> int:
        return 2 if self.chroma == "420" else 1

    def _scale(self) -> tuple[float, float, float, float]:
        """(luma scale, luma offset, chroma scale, chroma offset) in code values."""
        n = self.bit_depth
        if self.range == "limited":
            k = float(1 << (n - 8))
            return 219.0 * k, 16.0 * k, 224.0 * k, 128.0 * k
        peak = float((1 << n) - 1)
        return peak, 0.0, peak, float(1 << (n - 1))


def _box_down(plane: np.ndarray) -> np.ndarray:
    return 0.25 * (plane[0::2, 0::2] + plane[1::2, 0::2] + plane[0::2, 1::2] + plane[1::2, 1::2])


def _bilinear_up_axis(plane: np.ndarray, axis: int) -> np.ndarray:
    """Double ``plane`` along ``axis`` for centre-sited samples: 3/4 nearest + 1/4 next, edges replicated."""
    n = plane.shape[axis]
    prev = np.take(plane, np.clip(np.arange(n) - 1, 0, n - 1), axis=axis)
    nxt = np.take(plane, np.clip(np.arange(n) + 1, 0, n - 1), axis=axis)
    even = 0.75 * plane + 0.25 * prev
    odd = 0.75 * plane + 0.25 * nxt
    out_shape = list(plane.shape)
    out_shape[axis] = 2 * n
    out = np.empty(out_shape, dtype=np.float64)
    index_even = [slice(None)] * plane.ndim
    index_odd = [slice(None)] * plane.ndim
    index_even[axis] = slice(0, None, 2)
    index_odd[axis] = slice(1, None, 2)
    out[tuple(index_even)] = even
    out[tuple(index_odd)] = odd
    return out


def rgb_to_planes(rgb: np.ndarray, fmt: YuvFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, Cb, Cr code-value planes of an 8-bit RGB image (height and width even for 4:2:0)."""
    kr, kb = MATRICES[fmt.matrix]
    x = rgb.astype(np.float64) / 255.0
    y = kr * x[..., 0] + (1.0 - kr - kb) * x[..., 1] + kb * x[..., 2]
    cb = (x[..., 2] - y) / (2.0 * (1.0 - kb))
    cr = (x[..., 0] - y) / (2.0 * (1.0 - kr))
    if fmt.chroma == "420":
        cb, cr = _box_down(cb), _box_down(cr)
    ys, yo, cs, co = fmt._scale()
    peak = (1 << fmt.bit_depth) - 1
    dtype = fmt.sample_dtype

    def code(value: np.ndarray, scale: float, offset: float) -> np.ndarray:
        return np.clip(np.rint(value * scale + offset), 0, peak).astype(dtype)

    return code(y, ys, yo), code(cb, cs, co), code(cr, cs, co)


def planes_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, fmt: YuvFormat) -> np.ndarray:
    """8-bit RGB (rounded, clipped) from code-value planes."""
    kr, kb = MATRICES[fmt.matrix]
    ys, yo, cs, co = fmt._scale()
    luma = (y.astype(np.float64) - yo) / ys
    u = (cb.astype(np.float64) - co) / cs
    v = (cr.astype(np.float64) - co) / cs
    if fmt.chroma == "420":
        u = _bilinear_up_axis(_bilinear_up_axis(u, 0), 1)
        v = _bilinear_up_axis(_bilinear_up_axis(v, 0), 1)
    r = luma + 2.0 * (1.0 - kr) * v
    b = luma + 2.0 * (1.0 - kb) * u
    g = (luma - kr * r - kb * b) / (1.0 - kr - kb)
    rgb = np.stack([r, g, b], axis=-1) * 255.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def planes_to_raw(planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> bytes:
    """Planar raw frame as ffmpeg's rawvideo demuxer reads it (10-bit little endian)."""
    return b"".join(np.ascontiguousarray(p).tobytes() for p in planes)


def raw_to_planes(raw: bytes, height: int, width: int, fmt: YuvFormat) -> tuple[np.ndarray, ...]:
    """Split one raw planar frame of ``height`` x ``width`` back into Y, Cb, Cr arrays."""
    ch, cw = (height // 2, width // 2) if fmt.chroma == "420" else (height, width)
    dtype = np.dtype(fmt.sample_dtype)
    sizes = [height * width, ch * cw, ch * cw]
    expected = sum(sizes) * dtype.itemsize
    if len(raw) < expected:
        raise ValueError(f"decoded frame has {len(raw)} bytes, expected {expected}")
    flat = np.frombuffer(raw[:expected], dtype=dtype)
    y = flat[: sizes[0]].reshape(height, width)
    cb = flat[sizes[0] : sizes[0] + sizes[1]].reshape(ch, cw)
    cr = flat[sizes[0] + sizes[1] :].reshape(ch, cw)
    return y, cb, cr
