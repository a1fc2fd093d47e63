"""Image facts for assertions: does it decode, how big, is it upright, does it carry metadata."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageChops, ImageOps, ImageStat

__all__ = ["decode", "difference", "metadata_of", "reference", "upright_score"]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def metadata_of(data: bytes) -> dict[str, object]:
    """Every kind of metadata a viewer could read from the encoded bytes; empty means clean."""
    image = decode(data)
    found: dict[str, object] = {}
    if len(image.getexif()):
        found["exif"] = dict(image.getexif())
    for key in ("icc_profile", "xmp", "XML:com.adobe.xmp", "exif", "comment", "photoshop"):
        if image.info.get(key):
            found[key] = "present"
    if image.format == "JPEG":
        markers = _jpeg_markers(data)
        found.update({f"APP{m - 0xE0}": "present" for m in markers if m in (0xE1, 0xE2, 0xED)})
    return found


def _jpeg_markers(data: bytes) -> list[int]:
    markers, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: headers are over
            break
        markers.append(marker)
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return markers


def reference(path: Path, size: tuple[int, int]) -> Image.Image:
    """The original decoded by Pillow, EXIF orientation applied, scaled to ``size``."""
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return image.resize(size, Image.Resampling.LANCZOS)


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0..255."""
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB").resize(a.size))
    return sum(ImageStat.Stat(diff).mean) / 3


def upright_score(thumbnail: Image.Image, original: Path) -> tuple[float, float]:
    """(difference to the upright reference, smallest difference to any wrongly turned one)."""
    upright = reference(original, thumbnail.size)
    wrong = [
        upright.transpose(t)
        for t in (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270,
                  Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM)
    ]
    return difference(thumbnail, upright), min(difference(thumbnail, w) for w in wrong)
