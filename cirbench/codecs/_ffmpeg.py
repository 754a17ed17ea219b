"""Runs the static ffmpeg of imageio-ffmpeg: one binary, so HEVC/AVC/VVC give the same bytes everywhere.

Command lines are built with ffmpeg-python; failures become CodecError / CodecUnavailable, never exits.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ffmpeg

from cirbench.errors import CodecError, CodecUnavailable
from cirbench.fileio import scratch_dir, sha256_file

_TIMEOUT_SECONDS = 3600
_PR_SET_PDEATHSIG = 1


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded before any fork: the child only calls into it


def _die_with_parent() -> None:
    """preexec_fn of ffmpeg: the kernel kills it (SIGKILL) when the process that started it dies, even by kill -9,
    so a killed build or pool worker never leaves an encoder running."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's bundled ffmpeg binary."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise CodecUnavailable("ffmpeg", f"imageio-ffmpeg's binary is missing ({exc})", "pip install imageio-ffmpeg") from exc


@functools.lru_cache(maxsize=1)
def ffmpeg_versions() -> dict[str, str]:
    """ffmpeg's version line, the imageio-ffmpeg package version and the binary's sha256."""
    exe = ffmpeg_exe()
    proc = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, check=False)
    first = proc.stdout.splitlines()[0] if proc.stdout else "unknown"
    match = re.search(r"ffmpeg version (\S+)", first)
    return {
        "ffmpeg": match.group(1) if match else first,
        "imageio-ffmpeg": importlib.metadata.version("imageio-ffmpeg"),
        "ffmpeg_sha256": sha256_file(exe),
    }


@functools.cache
def has_encoder(encoder: str) -> bool:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True, check=False)
    return any(line.split()[1:2] == [encoder] for line in proc.stdout.splitlines() if line.strip())


def run_ffmpeg(build: Callable[[str], Any], data: bytes, what: str, loglevel: str = "info") -> tuple[bytes, str]:
    """Run the graph ``build(output_path)`` with ``data`` on stdin; return (output file bytes, log).

    The output goes to a temporary file, never to stdout: libvvenc prints its own messages on stdout,
    which would silently end up inside a piped bitstream. The log joins stderr and stdout.
    """
    with scratch_dir("ffmpeg") as tmp:
        out_path = os.path.join(tmp, "out.bin")
        args = ffmpeg.compile(build(out_path), cmd=ffmpeg_exe(), overwrite_output=True)
        args = [args[0], "-hide_banner", "-nostdin", "-loglevel", loglevel, *args[1:]]
        try:
            proc = subprocess.run(args, input=data, capture_output=True, timeout=_TIMEOUT_SECONDS, check=False,
                                  preexec_fn=_die_with_parent if _LIBC is not None else None)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise CodecError(f"{what}: ffmpeg did not finish within {_TIMEOUT_SECONDS} s") from exc
        except OSError as exc:
            raise CodecUnavailable("ffmpeg", f"cannot run {args[0]} ({exc.strerror or exc})") from exc
        log = proc.stderr.decode("utf-8", errors="replace") + proc.stdout.decode("utf-8", errors="replace")
        output = Path(out_path).read_bytes() if os.path.exists(out_path) else b""
    if proc.returncode != 0 or not output:
        tail = " | ".join(line for line in log.strip().splitlines()[-4:])
        raise CodecError(f"{what}: ffmpeg exited with {proc.returncode}: {tail}")
    return output, log


def probe_size(log: str) -> tuple[int, int]:
    """(height, width) of the first video stream as ffmpeg's decoder reports it in its log."""
    for line in log.splitlines():
        if "Video:" in line and "Stream #0:0" in line:
            match = re.search(r"\b(\d{2,5})x(\d{2,5})\b", line)
            if match:
                return int(match.group(2)), int(match.group(1))
    raise CodecError("cannot find the coded picture size in ffmpeg's log")
