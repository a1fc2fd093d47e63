"""Read just the orientation from EXIF (TIFF-structured bytes), an ImageMagick raw profile or XMP."""

from __future__ import annotations

import re
import struct

__all__ = ["orientation_from_exif", "orientation_from_raw_profile", "orientation_from_xmp"]

_ORIENTATION_TAG = 0x0112
_MAX_IFD_ENTRIES = 1000
_XMP_ORIENTATION = re.compile(rb"tiff:Orientation\s*(?:=\s*[\"']|>)\s*([0-9]+)")


def orientation_from_exif(exif: bytes) -> int:
    """Orientation 1-8 from IFD0 of an EXIF block (``Exif\\0\\0`` prefix optional); 1 if absent or invalid."""
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    if len(exif) < 8:
        return 1
    if exif[:4] == b"II*\x00":
        order = "<"
    elif exif[:4] == b"MM\x00*":
        order = ">"
    else:
        return 1
    (ifd,) = struct.unpack_from(order + "I", exif, 4)
    if ifd + 2 > len(exif):
        return 1
    (count,) = struct.unpack_from(order + "H", exif, ifd)
    for i in range(min(count, _MAX_IFD_ENTRIES)):
        at = ifd + 2 + 12 * i
        if at + 12 > len(exif):
            return 1
        tag, kind, n = struct.unpack_from(order + "HHI", exif, at)
        if tag == _ORIENTATION_TAG:
            if kind != 3 or n < 1:  # SHORT
                return 1
            (value,) = struct.unpack_from(order + "H", exif, at + 8)
            return _valid(value)
    return 1


def orientation_from_raw_profile(text: bytes) -> int:
    """ImageMagick's ``Raw profile type exif``: a blank line, the name, a length, then hex."""
    lines = text.split(b"\n")
    if len(lines) < 4:
        return 1
    digits = b"".join(b"".join(lines[3:]).split())
    try:
        exif = bytes.fromhex(digits.decode("ascii"))
    except ValueError:
        return 1
    return orientation_from_exif(exif)


def orientation_from_xmp(xmp: bytes) -> int:
    match = _XMP_ORIENTATION.search(xmp)
    return _valid(int(match.group(1))) if match else 1


def _valid(value: int) -> int:
    return value if 1 <= value <= 8 else 1  # 0, 9 and anything else mean "as stored"
