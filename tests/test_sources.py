"""Source images: every bad input named with its reason; grayscale sources recorded; canonical-set checks."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import shared
from PIL import Image

from cirbench.build.sources import list_sources, load_source, verify_source
from cirbench.errors import SourceImageError, SourceSetError


def _png16(path: Path) -> None:
    """A 16-bit RGB PNG written by hand (Pillow would silently reduce it to 8 bits when writing RGB)."""
    height, width = 20, 20
    raw = b"".join(b"\x00" + b"\x12\x34" * 3 * width for _ in range(height))
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Write one file per bad-input kind; returns file name -> expected reason fragment."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(colour).save(folder / "full.png")
    (folder / "truncated.png").write_bytes((folder / "full.png").read_bytes()[:300])
    (folder / "full.png").unlink()
    (folder / "notes.png").write_text("this is not an image", encoding="utf-8")
    (folder / "data.bin").write_bytes(b"\x00\x01\x02" * 10)
    rgba = np.dstack([colour, np.full((40, 40), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    _png16(folder / "deep16.png")
    Image.fromarray(colour).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(colour).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(folder / "palette.png")
    Image.fromarray(colour[:1, :1]).save(folder / "tiny.png")
    Image.new("RGB", (9000, 9000)).save(folder / "bomb.png")
    (folder / "empty.jpg").write_bytes(b"")
    return {
        "truncated.png": "corrupt or truncated",
        "notes.png": "not an image",
        "data.bin": "not an image",
        "alpha.png": "transparent pixels",
        "deep16.png": "more than 8 bits",
        "cmyk.jpg": "CMYK",
        "palette.png": "colour-palette",
        "tiny.png": "smaller than the minimum",
        "bomb.png": "exceeds the limit",
        "empty.jpg": "empty file",
    }


def test_every_bad_input_names_the_file_and_the_reason(tmp_path: Path) -> None:
    expected = make_bad_inputs(tmp_path / "bad")
    for name, fragment in expected.items():
        with pytest.raises(SourceImageError) as info:
            load_source(tmp_path / "bad" / name, max_pixels=50_000_000)
        assert name in str(info.value) and fragment in info.value.reason, (name, info.value.reason)


def test_opaque_rgba_unicode_names_and_grayscale_are_accepted_and_recorded(tmp_path: Path) -> None:
    colour = np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(np.dstack([colour, np.full((32, 48), 255, np.uint8)]), "RGBA").save(tmp_path / "opaque.png")
    opaque = load_source(tmp_path / "opaque.png")
    assert np.array_equal(opaque.rgb, colour) and "alpha" in opaque.conversion
    shutil.copy(tmp_path / "opaque.png", tmp_path / "Zürich 東京.png")
    assert load_source(tmp_path / "Zürich 東京.png").stem == "Zürich 東京"
    gray = load_source(shared("classic5", "barbara.bmp"))
    assert gray.source_mode == "L" and gray.conversion == "grayscale replicated to RGB"  # Pillow reads gray BMPs as L
    assert gray.rgb.shape == (512, 512, 3) and np.array_equal(gray.rgb[..., 0], gray.rgb[..., 2])
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    palette_gray = Image.fromarray(levels).convert("P")
    palette_gray.putpalette([v for i in range(256) for v in (i, i, i)])
    palette_gray.save(tmp_path / "gray_palette.png")
    loaded = load_source(tmp_path / "gray_palette.png")
    assert loaded.conversion == "grayscale palette expanded to RGB" and np.array_equal(loaded.rgb[..., 1], levels)


def test_listing_ignores_documentation_but_not_unknown_files(tmp_path: Path) -> None:
    for name in ("a.png", "SHA256SUMS", "SOURCES.md", ".hidden.png", "weird.xyz"):
        (tmp_path / name).write_bytes(b"x")
    listing = list_sources(tmp_path)
    assert [p.name for p in listing.images] == ["a.png", "weird.xyz"]
    assert sorted(p.name for p in listing.ignored) == ["SHA256SUMS", "SOURCES.md"]
    with pytest.raises(SourceSetError):
        list_sources(tmp_path / "missing")


def test_canonical_sets_match_the_shared_data() -> None:
    for folder, name in (("kodak", "kodak"), ("live1", "live1"), ("classic5", "classic5"), ("cbsd68", "cbsd68")):
        check = verify_source(shared(folder), name)
        assert check.ok, (name, check)
    assert len(verify_source(shared("bsds500", "test"), "bsds500-test").matched) == 200


def test_verify_source_reports_missing_extra_different_and_renamed(tmp_path: Path) -> None:
    folder = tmp_path / "classic5"
    shutil.copytree(shared("classic5"), folder)
    (folder / "boats.bmp").unlink()
    (folder / "lena.bmp").rename(folder / "4.bmp")
    data = bytearray((folder / "peppers.bmp").read_bytes())
    data[-1] ^= 0xFF
    (folder / "peppers.bmp").write_bytes(bytes(data))
    shutil.copy(shared("kodak", "kodim01.png"), folder / "extra.png")
    check = verify_source(folder, "classic5")
    assert check.missing == ["boats.bmp"] and check.different == ["peppers.bmp"]
    assert check.extra == ["extra.png"] and check.renamed == {"4.bmp": "lena.bmp"}
    assert not check.ok
    with pytest.raises(SourceSetError, match="unknown source set"):
        verify_source(folder, "set14")
