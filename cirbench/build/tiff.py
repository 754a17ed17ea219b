"""TIFF sources: what Pillow cannot read (PNG-, WebP-, JPEG 2000-, LERC-compressed strips) is read by tifffile.

Pages, sample type and bit depth are checked from the tags first, so a float, 16-bit or multipage TIFF is refused
with its reason instead of whatever a decoder makes of it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from cirbench.errors import SourceImageError

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
# compressions the libtiff inside Pillow decodes: none, LZW, JPEG, Adobe deflate, deflate, PackBits, LZMA, Zstandard
PILLOW_COMPRESSIONS = frozenset({1, 5, 7, 8, 32946, 32773, 34925, 50000})


def is_tiff(data: bytes) -> bool:
    return data[:4] in TIFF_MAGIC


def _sample_kind(page) -> str:
    """A phrase for the page's samples when they are not unsigned 8-bit, else ''."""
    dtype = np.dtype(page.dtype) if page.dtype is not None else None
    if dtype is None:
        return f"{page.bitspersample}-bit samples of an unsupported type"
    if dtype.kind == "f":
        return f"{dtype.itemsize * 8}-bit float samples"
    if dtype.kind == "c":
        return "complex samples"
    if dtype.itemsize > 1:
        return f"{dtype.itemsize * 8}-bit {'signed ' if dtype.kind == 'i' else ''}integer samples"
    if dtype.kind == "i":
        return "signed 8-bit samples"
    if dtype.kind == "b" or page.bitspersample < 8:
        return f"{page.bitspersample}-bit samples"
    return ""


def read_tiff(path: Path, data: bytes, max_pixels: int) -> Image.Image | None:
    """None when Pillow reads this TIFF as it is; else the pixels decoded by tifffile (as a Pillow image).

    SourceImageError for what cannot be an 8-bit ground truth: several pages, float or >8-bit samples.
    """
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = len(tif.pages)
            page = tif.pages[0]
            if pages > 1:
                raise SourceImageError(path, f"multipage TIFF with {pages} pages; cirbench takes single-frame "
                                             "images (extract the page you want first)")  # fmt: skip
            kind = _sample_kind(page)
            if kind:
                raise SourceImageError(path, f"TIFF with {kind}; cirbench sources are unsigned 8-bit, never more "
                                             "than 8 bits or float (convert it first with the tone mapping you "
                                             "want)")  # fmt: skip
            if int(page.compression) in PILLOW_COMPRESSIONS:
                return None
            height, width = int(page.imagelength), int(page.imagewidth)
            if height * width > max_pixels:
                raise SourceImageError(path, f"{width}x{height} = {width * height} pixels exceeds the limit of "
                                             f"{max_pixels}")  # fmt: skip
            pixels = page.asarray()
    except SourceImageError:
        raise
    except Exception as exc:  # noqa: BLE001  (tifffile and its codecs report damaged files in many ways)
        raise SourceImageError(path, f"corrupt or unsupported TIFF ({(str(exc).splitlines() or [''])[0]})") from exc
    return _as_image(path, pixels)


def _as_image(path: Path, pixels: np.ndarray) -> Image.Image:
    if pixels.ndim == 2:
        return Image.fromarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(pixels))  # RGB or RGBA from the sample count
    raise SourceImageError(path, f"TIFF with samples of shape {list(pixels.shape)}; expected gray, RGB or RGBA")
