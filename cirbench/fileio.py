"""Atomic file writes and content hashes used by every writer in cirbench.

A write goes to a temporary file in the target folder and is renamed into place, so a killed run
never leaves a half-written file under a final name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cirbench.errors import OutputError

_CHUNK = 1 << 20


def _default_file_mode() -> int:
    """The mode open() would give a new file (0o666 minus the umask); mkstemp's 0o600 is too strict."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _default_file_mode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


_NAME_ROOM = 200  # bytes of the final name kept in a temporary name (names stay under NAME_MAX = 255)


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file beside ``name``: the name itself, or for a long one its start and a hash, so
    that prefix + mkstemp's 8 characters + '.part' never exceeds the file system's 255-byte name limit."""
    raw = os.fsencode(name)
    if len(raw) <= _NAME_ROOM:
        return f".{name}."
    head = raw[:64].decode("utf-8", errors="ignore")
    return f".{head}-{hashlib.sha256(raw).hexdigest()[:16]}."


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary binary file beside ``path``; rename it onto ``path`` on success."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".part", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"cannot write in {target.parent}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, target)
    except BaseException:
        with _suppress_os_error():
            os.unlink(tmp_name)
        raise


@contextmanager
def _suppress_os_error() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    try:
        with atomic_open(path) as handle:
            handle.write(data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_with_atomic(path: str | os.PathLike[str], writer: Callable[[str], None]) -> None:
    """Let ``writer`` write a temporary path (for libraries that want a file name), then rename."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(target.name), suffix=".part", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write in {target.parent}: {exc.strerror or exc}") from exc
    try:
        writer(tmp_name)
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, target)
    except OSError as exc:  # disk full, quota, read-only: one line naming the file
        with _suppress_os_error():
            os.unlink(tmp_name)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        with _suppress_os_error():
            os.unlink(tmp_name)
        raise


SCRATCH_ROOT_NAME = "cirbench-scratch"


def scratch_root() -> Path:
    """Where cirbench's temporary folders live: <system temp>/cirbench-scratch (one folder per owner process)."""
    return Path(tempfile.gettempdir()) / SCRATCH_ROOT_NAME


def pid_alive(pid: int) -> bool:
    """True unless no process has this PID (a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder named <prefix>-<pid>-<random> under scratch_root(), removed on exit.

    A process killed with SIGKILL cannot remove it; clean_stale_scratch() (run at the start of every build)
    removes the folders whose owner process is gone.
    """
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-{os.getpid()}-", dir=root) as path:
        yield Path(path)


def clean_stale_scratch() -> int:
    """Remove scratch folders left by processes that no longer exist; return how many were removed."""
    import shutil

    removed = 0
    root = scratch_root()
    for folder in root.iterdir() if root.is_dir() else ():
        parts = folder.name.rsplit("-", 2)
        if len(parts) != 3 or not parts[1].isdigit() or pid_alive(int(parts[1])):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def declared_bits_per_sample(image: Any, header: bytes) -> int:
    """Largest bits per sample an opened Pillow image's file declares (PNG IHDR, TIFF BitsPerSample); 8 otherwise.

    Pillow opens 16-bit RGB PNGs and TIFFs as 8-bit RGB without a word, so readers check this first.
    """
    if header[:8] == b"\x89PNG\r\n\x1a\n" and len(header) >= 25:
        return int(header[24])
    tags = getattr(image, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None  # TIFF BitsPerSample
    if bits is None:
        return 16 if getattr(image, "mode", "").startswith("I;16") else 8
    return int(max(bits)) if isinstance(bits, tuple | list) else int(bits)


PNG_COMPRESS_LEVEL = 1  # zlib level 1: 3x faster than 6 and, on photographs, barely larger


def encode_png(rgb: np.ndarray) -> bytes:
    """Deterministic PNG bytes of an 8-bit RGB array (libpng through imagecodecs, no metadata, fixed level).

    imagecodecs releases the GIL while compressing and is ~20 % faster than Pillow's encoder here.
    """
    import imagecodecs

    return bytes(imagecodecs.png_encode(np.ascontiguousarray(rgb), level=PNG_COMPRESS_LEVEL))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png_rgb8(data: bytes) -> np.ndarray | None:
    """HxWx3 uint8 of a PNG whose header says 8-bit RGB, through libpng (imagecodecs, ~1.8x Pillow's decoder;
    the GIL is released); None for any other file or a file libpng refuses: the caller's reader decides then."""
    if data[:8] != PNG_SIGNATURE or len(data) < 33 or data[12:16] != b"IHDR" or data[24:26] != b"\x08\x02":
        return None
    import imagecodecs
    from PIL import Image

    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if Image.MAX_IMAGE_PIXELS is not None and width * height > Image.MAX_IMAGE_PIXELS:
        return None  # Pillow's decompression-bomb rule applies to huge files
    try:
        rgb = imagecodecs.png_decode(data)
    except (RuntimeError, ValueError):  # PngError, and a UnicodeDecodeError imagecodecs raises on some bad files
        return None
    return rgb if rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8 else None
