"""What a file is, from its first bytes, when it should be a weight file and is not (for one-line errors).

`weights check`, `weights import` and checkpoint loading say "it is a PNG image", not an unpickler's error code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WebP image or WAV audio)"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"BZh", "a bzip2 archive (unpack it first)"),
    (b"\xfd7zXZ\x00", "an xz archive (unpack it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive (unpack it first)"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"\x89HDF", "an HDF5 file (a Keras/TensorFlow checkpoint?)"),
    (b"version https://git-lfs", "a Git LFS pointer, not the file itself (run `git lfs pull`)"),
)


def what_file_is(path: str | Path) -> str:
    """A phrase naming what ``path`` holds ("an empty file", "a PNG image", "text (HTML)", ...), or "" when it is
    not recognised (it may still be a damaged checkpoint)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not head:
        return "an empty file"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                if any(name.endswith("data.pkl") for name in archive.namelist()):
                    return ""  # torch's own zip format
        except (OSError, zipfile.BadZipFile):
            return "a damaged zip archive"
        return "a zip archive that is not a torch checkpoint"
    if head[:4] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head[:1] == b"\x80":
        return ""  # a pickle: let the unpickler's own error speak
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    stripped = text.lstrip().lower()
    if stripped.startswith(("<!doctype html", "<html")):
        return "an HTML page (a download that returned a web page?)"
    if stripped.startswith(("{", "[")):
        return "a JSON or text file"
    return "a text file"


def not_a_checkpoint(path: str | Path, exc: BaseException) -> str:
    """The one-line error for a file that torch cannot read as a checkpoint."""
    kind = what_file_is(path)
    if kind:
        return f"{path}: not a torch checkpoint or safetensors file: it is {kind}"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{path}: not a readable torch checkpoint ({first})"


def refuse_if_not_a_checkpoint(path: str | Path) -> None:
    """Raise CirbenchError before any unpickling when the first bytes show ``path`` is no weight file at all."""
    from cirbench.errors import CirbenchError

    kind = what_file_is(path)
    if kind:
        raise CirbenchError(f"{path}: not a torch checkpoint or safetensors file: it is {kind}")
