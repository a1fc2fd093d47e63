"""Decode 16/32-bit BI_BITFIELDS BMPs with any contiguous masks, through Pillow's raw unpacker and ImageMath."""

from __future__ import annotations

from PIL import Image, ImageMath

from imgpipe.domain.errors import CorruptImage
from imgpipe.imaging._bmp import parse_bmp_header

__all__ = ["decode_bitfields"]

_HEAD = 14 + 124 + 16


def decode_bitfields(data: bytes) -> Image.Image:
    """RGB, or RGBA when an alpha mask is present and not all zero (a common "no alpha" convention)."""
    layout = parse_bmp_header(data[:_HEAD])
    red, green, blue, alpha = layout.masks
    if not (red and green and blue) or not all(_contiguous(m) for m in layout.masks if m):
        raise CorruptImage("The BMP colour masks are empty or not contiguous.")
    end = layout.pixels_at + layout.row_bytes * layout.height
    if end > len(data):
        raise CorruptImage("The BMP pixel data is truncated.")
    rawmode = "I;32" if layout.bits == 32 else "I;16"
    ystep = 1 if layout.top_down else -1  # BMP rows run bottom-up unless the height is negative
    packed = Image.frombuffer(
        "I", (layout.width, layout.height), data[layout.pixels_at : end], "raw", rawmode, layout.row_bytes, ystep
    ).convert("I")
    bands = [_channel(packed, mask) for mask in (red, green, blue)]
    if alpha:
        a = _channel(packed, alpha)
        if a.getextrema() != (0, 0):
            return Image.merge("RGBA", (*bands, a))
    return Image.merge("RGB", bands)


def _channel(packed: Image.Image, mask: int) -> Image.Image:
    shift = (mask & -mask).bit_length() - 1
    top = (mask >> shift).bit_length()
    maximum = (1 << top) - 1
    # ImageMath works on signed 32-bit ints: an arithmetic shift then a mask is still right.
    scaled = ImageMath.lambda_eval(lambda env: ((env["v"] >> shift) & maximum) * 255 / maximum, v=packed)
    assert isinstance(scaled, Image.Image)
    return scaled.convert("L")


def _contiguous(mask: int) -> bool:
    shifted = mask >> ((mask & -mask).bit_length() - 1)
    return shifted & (shifted + 1) == 0 and shifted.bit_length() <= 16
