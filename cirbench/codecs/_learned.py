"""Shared pieces of the learned codecs: self-describing bitstream container, tensor conversion, model cache.

A learned bitstream is: 2-byte magic, 1-byte version, the coded latent shape and the entropy-coded strings.
"""

from __future__ import annotations

import struct
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np

from cirbench.errors import CodecError, CodecUnavailable, ConfigError
from cirbench.fileio import sha256_file

CONTAINER_VERSION = 1

# CompressAI's entropy models call torch.jit.script at import, which recent torch marks deprecated with a
# FutureWarning on every start. It says nothing about cirbench's results: that one message is silenced.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)


def _write_varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, high bit set on all but the last byte."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise CodecError("truncated bitstream (varint runs past the end)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise CodecError("malformed bitstream (varint too long)")


def pack_bitstream(magic: bytes, shape: tuple[int, ...], strings: list[bytes]) -> bytes:
    """One byte string holding the latent ``shape`` (uint16 each) and the entropy-coded ``strings``."""
    if len(magic) != 2:
        raise ValueError("magic must be 2 bytes")
    if any(not 0 <= int(s) < 1 << 16 for s in shape):
        raise CodecError(f"latent shape {shape} does not fit the bitstream header (uint16 per side)")
    parts = [magic, bytes([CONTAINER_VERSION, len(shape)]), struct.pack(f">{len(shape)}H", *shape)]
    parts.append(bytes([len(strings)]))
    for string in strings:
        parts.append(_write_varint(len(string)))
        parts.append(bytes(string))
    return b"".join(parts)


def unpack_bitstream(data: bytes, magic: bytes) -> tuple[tuple[int, ...], list[bytes]]:
    """Inverse of :func:`pack_bitstream`; CodecError on a foreign or damaged stream."""
    if len(data) < 5 or data[:2] != magic:
        raise CodecError(f"not a {magic.decode('ascii')} bitstream (bad magic)")
    if data[2] != CONTAINER_VERSION:
        raise CodecError(f"unsupported bitstream version {data[2]} (this cirbench writes {CONTAINER_VERSION})")
    ndim = data[3]
    pos = 4 + 2 * ndim
    if len(data) < pos + 1:
        raise CodecError("truncated bitstream header")
    shape = struct.unpack(f">{ndim}H", data[4:pos])
    count = data[pos]
    pos += 1
    strings = []
    for _ in range(count):
        length, pos = _read_varint(data, pos)
        if pos + length > len(data):
            raise CodecError("truncated bitstream (string runs past the end)")
        strings.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise CodecError(f"bitstream has {len(data) - pos} trailing bytes")
    return tuple(int(s) for s in shape), strings


def rgb_to_tensor(rgb: np.ndarray, device: str) -> Any:
    """uint8 HxWx3 -> float32 1x3xHxW in [0, 1] on ``device``."""
    import torch

    array = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0
    return torch.from_numpy(array).unsqueeze(0).to(device)


def tensor_to_rgb(x: Any) -> np.ndarray:
    """float 1x3xHxW in [0, 1] -> uint8 HxWx3, rounding half up (x*255 + 0.5, floored) after clamping."""
    import torch

    scaled = torch.floor(x.detach().float().clamp(0.0, 1.0) * 255.0 + 0.5)
    return np.ascontiguousarray(scaled[0].permute(1, 2, 0).cpu().numpy().astype(np.uint8))


def validate_device(codec: str, device: str) -> None:
    """ConfigError unless ``device`` is 'cpu', 'cuda' or 'cuda:N'."""
    if device == "cpu" or device == "cuda":
        return
    if device.startswith("cuda:") and device[5:].isdigit():
        return
    raise ConfigError(f"{codec}: device must be 'cpu', 'cuda' or 'cuda:N', got '{device}'")


def local_checkpoint(codec: str, checkpoint: str) -> Path:
    """The user's checkpoint file; CodecUnavailable when it does not exist."""
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise CodecUnavailable(codec, f"checkpoint file {path} does not exist", "fix the checkpoint path")
    return path


def check_device(codec: str, device: str) -> None:
    """CodecUnavailable when a CUDA device is asked for on a machine without one."""
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise CodecUnavailable(codec, f"device '{device}' requested but CUDA is not available", "use device = \"cpu\"")


class ModelCache:
    """Per-process LRU cache of loaded networks, keyed by everything that determines the weights."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        value = load()
        self._items[key] = value
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        self._items.clear()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """sha256 of a weights file, memoised per (path, size, mtime) so tool_versions stays cheap."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def learned_tool_versions(weights: Path) -> dict[str, str]:
    """What a learned codec records: compressai and torch versions, the weights file and its sha256."""
    import compressai
    import torch

    return {
        "compressai": compressai.__version__,
        "torch": torch.__version__,
        "weights": weights.name,
        "weights_sha256": file_digest(weights),
    }
