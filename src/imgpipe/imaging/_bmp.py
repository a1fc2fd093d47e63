"""BMP header probe for every header size (OS/2 1.x and 2.x, BITMAPINFOHEADER to V5), and the layout it declares."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from imgpipe.domain.errors import CorruptImage, UnsupportedImage
from imgpipe.imaging._header import Header, checked_info
from imgpipe.imaging._source import Source
from imgpipe.imaging.types import ImageFormat, Limits

__all__ = ["BmpLayout", "parse_bmp_header", "probe_bmp"]

_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_BITS = frozenset({1, 2, 4, 8, 16, 24, 32})
_RGB, _RLE8, _RLE4, _BITFIELDS, _ALPHABITFIELDS = 0, 1, 2, 3, 6
_HEAD = 14 + 124 + 16  # file header, the largest info header, and masks after a 40-byte header


@dataclass(frozen=True, slots=True)
class BmpLayout:
    width: int
    height: int  # absolute; ``top_down`` says which way rows run
    top_down: bool
    bits: int
    compression: int
    pixels_at: int
    masks: tuple[int, int, int, int]  # red, green, blue, alpha; zeros when not bitfields

    @property
    def row_bytes(self) -> int:
        return (self.bits * self.width + 31) // 32 * 4


def parse_bmp_header(head: bytes) -> BmpLayout:
    """Decode the declared layout from the first bytes; CorruptImage if it is impossible."""
    if len(head) < 26 or head[:2] != b"BM":
        raise CorruptImage("The BMP header is truncated.")
    pixels_at, header_size = struct.unpack_from("<II", head, 10)
    if header_size not in _HEADER_SIZES or len(head) < 14 + min(header_size, 40):
        raise CorruptImage(f"The BMP header size ({header_size}) is not one any BMP version uses.")
    if header_size == 12:
        width, height, _planes, bits = struct.unpack_from("<HHHH", head, 18)
        compression = _RGB
    else:
        width, height, _planes, bits = struct.unpack_from("<iiHH", head, 18)
        compression = struct.unpack_from("<I", head, 30)[0] if header_size >= 20 else _RGB
    if bits not in _BITS:
        raise CorruptImage(f"The BMP declares {bits} bits per pixel.")
    if compression in (4, 5):
        raise UnsupportedImage("BMP files wrapping JPEG or PNG data are not supported.")
    valid = {
        _RGB: bits in _BITS,
        _RLE8: bits == 8,
        _RLE4: bits == 4,
        _BITFIELDS: bits in (16, 32),
        _ALPHABITFIELDS: bits in (16, 32),
    }
    if not valid.get(compression, False):
        raise CorruptImage("The BMP compression does not match its bit depth.")
    masks = (0, 0, 0, 0)
    if compression in (_BITFIELDS, _ALPHABITFIELDS):
        count = 4 if compression == _ALPHABITFIELDS or header_size >= 56 else 3
        masks_at = 14 + 40
        if len(head) < masks_at + 4 * count:
            raise CorruptImage("The BMP colour masks are truncated.")
        found = struct.unpack_from(f"<{count}I", head, masks_at)
        masks = (found[0], found[1], found[2], found[3] if count == 4 else 0)
    return BmpLayout(width, abs(height), height < 0, bits, compression, pixels_at, masks)


def probe_bmp(src: Source, limits: Limits) -> Header:
    layout = parse_bmp_header(src.read_upto(0, _HEAD))
    info = checked_info(ImageFormat.BMP, layout.width, layout.height, limits)
    if layout.compression in (_RLE8, _RLE4):
        needed = 1  # run-length data: at least something must follow the header
    else:
        needed = layout.row_bytes * layout.height
    if layout.pixels_at + needed > src.size:
        raise CorruptImage("The BMP pixel data is truncated.")
    bitfields = layout.compression in (_BITFIELDS, _ALPHABITFIELDS)
    return Header(info, bmp_bitfields=bitfields)
