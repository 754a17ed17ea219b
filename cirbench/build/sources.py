"""Source images: discovery in a folder, validation, conversion to 8-bit RGB, canonical-set checks.

Every decision taken on a source (grayscale expanded to RGB, opaque alpha dropped) is returned so that
the manifest can record it; anything that cannot be a clean 8-bit ground truth raises SourceImageError.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cirbench.build.tiff import is_tiff, read_tiff
from cirbench.errors import SourceImageError, SourceSetError
from cirbench.fileio import declared_bits_per_sample, sha256_bytes, sha256_file
from cirbench.resources import shipped_dir

IMAGE_SUFFIXES = frozenset(
    {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".gif", ".tga"}
)
SIDECAR_SUFFIXES = frozenset({".md", ".txt", ".json", ".csv", ".yaml", ".yml", ".toml", ".html", ".parquet"})
SIDECAR_NAMES = frozenset({"SHA256SUMS", "MD5SUMS", "LICENSE", "README", "Thumbs.db"})
DEFAULT_MAX_PIXELS = 64_000_000
LOSSY_SUFFIXES = frozenset({".jpg", ".jpeg", ".webp"})  # of two sources with one stem, the lossless one is used
MIN_SIDE = 16


@dataclass(frozen=True)
class SourceImage:
    """A validated source: its file, its bytes' hash, and the 8-bit RGB pixels the build uses."""

    path: Path
    stem: str
    sha256: str
    file_bytes: int
    source_mode: str
    conversion: str
    rgb: np.ndarray = field(repr=False, compare=False)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


@dataclass(frozen=True)
class SourceListing:
    """The entries of a source folder: candidate images, ignored sidecar files, skipped and refused entries.

    ``skipped`` holds (name, reason) for entries that are not regular files or are hidden; ``refused`` holds
    (name, reason) for files that look like sources but cannot be recorded (a name that is not valid UTF-8).
    """

    images: list[Path]
    ignored: list[Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def display_name(name: str) -> str:
    """A file name printable and storable as UTF-8 (undecodable bytes shown as \\xNN escapes)."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def _skip_reason(entry: Path) -> str | None:
    """Why ``entry`` is not a candidate source, or None when it is a regular, visible file."""
    if entry.name.startswith("."):
        return "hidden file"
    if entry.is_symlink() and not entry.exists():
        return "symlink that does not resolve (dangling or a loop)"
    if entry.is_dir():
        if entry.suffix.lower() in IMAGE_SUFFIXES:
            return "a folder named like an image"
        return "a folder (source folders are not searched recursively)"
    if not entry.is_file():
        return "not a regular file (fifo, socket or device)"
    return None


def list_sources(folder: str | os.PathLike[str]) -> SourceListing:
    """Candidate source files of ``folder`` (not recursive), sorted by name.

    Documentation and checksum files are ignored; every other regular file is a candidate, so a
    non-image file without a documentation suffix is reported as a bad input instead of skipped.
    Every entry that is not used is listed with its reason, so no image leaves a set unnoticed.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SourceSetError(f"source folder {root} does not exist or is not a folder")
    listing = SourceListing(images=[], ignored=[])
    for entry in sorted(root.iterdir(), key=lambda p: os.fsencode(p.name)):
        reason = _skip_reason(entry)
        if reason is not None:
            listing.skipped.append((display_name(entry.name), reason))
        elif display_name(entry.name) != entry.name:
            listing.refused.append((display_name(entry.name), "file name is not valid UTF-8; rename the file"))
        elif entry.suffix.lower() in SIDECAR_SUFFIXES or entry.name in SIDECAR_NAMES:
            listing.ignored.append(entry)
        else:
            listing.images.append(entry)
    if not listing.images:
        unused = len(listing.ignored) + len(listing.skipped) + len(listing.refused)
        raise SourceSetError(f"source folder {root} holds no image files ({unused} other entries)")
    return listing


def pick_by_stem(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(used, [(passed over, used instead)], [(clash, kept)]): of two files with one stem, a lossless one is used
    over a lossy one (JPEG, WebP); two of the same kind clash (their outputs would collide)."""
    kept: dict[str, Path] = {}
    passed, clashes = [], []
    for path in paths:
        other = kept.get(path.stem)
        if other is None:
            kept[path.stem] = path
            continue
        lossy_new, lossy_old = path.suffix.lower() in LOSSY_SUFFIXES, other.suffix.lower() in LOSSY_SUFFIXES
        if lossy_new == lossy_old:
            clashes.append((path, other))
        elif lossy_old:
            kept[path.stem] = path
            passed.append((other, path))
        else:
            passed.append((path, other))
    return sorted(kept.values(), key=lambda p: os.fsencode(p.name)), passed, clashes


def _open_checked(path: Path, data: bytes, max_pixels: int) -> Image.Image:
    import io

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise SourceImageError(
                    path, f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
                )
            image.load()
            frames = int(getattr(image, "n_frames", 1) or 1)
            if frames > 1:
                kind = {"TIFF": "multipage TIFF"}.get(str(image.format), f"animated {image.format}")
                raise SourceImageError(path, f"{kind} with {frames} frames; cirbench takes single-frame images "
                                             "(extract the frame you want first)")  # fmt: skip
    except Image.DecompressionBombError as exc:
        raise SourceImageError(path, f"rejected as a decompression bomb ({exc})") from exc
    except Image.DecompressionBombWarning as exc:
        raise SourceImageError(path, f"rejected as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise SourceImageError(path, "not an image (no decoder recognises its content)") from exc
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise SourceImageError(path, f"corrupt or truncated image ({exc})") from exc
    return image


def _check_depth(path: Path, image: Image.Image, data: bytes) -> None:
    bits = declared_bits_per_sample(image, data[:64])
    if bits > 8 or image.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        shown = f" ({bits})" if bits > 8 else ""
        raise SourceImageError(
            path, f"{image.mode} image with more than 8 bits per sample{shown}; cirbench sources are 8-bit "
            "(convert it first with the tone mapping you want)"
        )  # fmt: skip


def _apply_orientation(path: Path, image: Image.Image) -> tuple[Image.Image, str]:
    """Pixels in display orientation: an EXIF Orientation tag other than 1 is applied and recorded."""
    orientation = image.getexif().get(0x0112, 1)
    if orientation in (None, 1):
        return image, ""
    if orientation not in range(2, 9):
        raise SourceImageError(path, f"invalid EXIF orientation tag {orientation} (valid: 1..8)")
    return ImageOps.exif_transpose(image), f"EXIF orientation {orientation} applied"


def _to_rgb(path: Path, image: Image.Image) -> tuple[np.ndarray, str]:
    mode = image.mode
    if mode == "CMYK":
        raise SourceImageError(path, "CMYK image; convert it to RGB with a colour profile first")
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8), "none"
    if mode == "L":
        gray = np.asarray(image, dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), "grayscale replicated to RGB"
    if mode == "P":
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if "transparency" in image.info:
            raise SourceImageError(path, "palette image with transparency; flatten it first")
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return rgb, "grayscale palette expanded to RGB"
        raise SourceImageError(path, "colour-palette image (already quantised to a palette); not a clean ground truth")
    if mode in {"RGBA", "LA"}:
        alpha = np.asarray(image.getchannel("A"))
        if alpha.min() < 255:
            raise SourceImageError(path, f"{mode} image with transparent pixels; flatten it onto a background first")
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return rgb, f"fully opaque alpha of {mode} dropped"
    raise SourceImageError(path, f"unsupported image mode {mode}")


def load_source(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> SourceImage:
    """Read, validate and convert one source image; SourceImageError names the file and the reason."""
    src = Path(path)
    try:
        data = src.read_bytes()
    except OSError as exc:
        raise SourceImageError(src, f"cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise SourceImageError(src, "empty file")
    decoded = read_tiff(src, data, max_pixels) if is_tiff(data) else None  # layouts Pillow cannot decode
    image = decoded if decoded is not None else _open_checked(src, data, max_pixels)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise SourceImageError(src, f"{width}x{height} is smaller than the minimum of {MIN_SIDE}x{MIN_SIDE}")
    _check_depth(src, image, data)
    image, oriented = _apply_orientation(src, image)
    rgb, conversion = _to_rgb(src, image)
    if oriented:
        conversion = oriented if conversion == "none" else f"{oriented}; {conversion}"
    if decoded is not None:
        conversion = "read with tifffile" if conversion == "none" else f"read with tifffile; {conversion}"
    return SourceImage(
        path=src,
        stem=src.stem,
        sha256=sha256_bytes(data),
        file_bytes=len(data),
        source_mode=image.mode,
        conversion=conversion,
        rgb=np.ascontiguousarray(rgb),
    )


# --- canonical source sets -------------------------------------------------------------------


@dataclass(frozen=True)
class SourceCheck:
    """Outcome of comparing a folder with a canonical set's hashes."""

    set_name: str
    matched: list[str]
    missing: list[str]
    extra: list[str]
    different: list[str]
    renamed: dict[str, str]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.different or self.renamed)


def canonical_sets() -> dict[str, Path]:
    folder = shipped_dir("manifests") / "sources"
    return {p.stem: p for p in sorted(folder.glob("*.json"))}


def load_canonical_set(name: str) -> dict:
    sets = canonical_sets()
    key = name.lower()
    if key not in sets:
        raise SourceSetError(f"unknown source set '{name}' (known: {', '.join(sets)})")
    try:
        return json.loads(sets[key].read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceSetError(f"canonical set file {sets[key]} is unreadable: {exc}") from exc


def verify_source(folder: str | os.PathLike[str], set_name: str) -> SourceCheck:
    """Compare ``folder`` with the canonical set: missing, extra, different and renamed files."""
    spec = load_canonical_set(set_name)
    expected: dict[str, str] = {f["name"]: f["sha256"] for f in spec["files"]}
    listing = list_sources(folder)
    present = {p.name: sha256_file(p) for p in listing.images}
    by_hash = {digest: name for name, digest in expected.items()}
    matched, different, extra = [], [], []
    renamed: dict[str, str] = {}
    for name, digest in present.items():
        if name in expected:
            (matched if expected[name] == digest else different).append(name)
        elif digest in by_hash and by_hash[digest] not in present:
            renamed[name] = by_hash[digest]
        else:
            extra.append(name)
    missing = [n for n in expected if n not in present and n not in renamed.values()]
    return SourceCheck(spec["name"], sorted(matched), sorted(missing), sorted(extra), sorted(different), renamed)
