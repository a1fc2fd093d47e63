"""Read just the orientation from EXIF (TIFF-structured bytes), an ImageMagick raw profile or XMP.

Every function here returns 1-8 and never raises: broken metadata means "as stored".
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

__all__ = [
    "Reader",
    "orientation_from_exif",
    "orientation_from_raw_profile",
    "orientation_from_xmp",
    "orientation_in",
    "valid_orientation",
]

Reader = Callable[[int, int], bytes]
"""``read(offset, n)``: at most ``n`` bytes of an EXIF block at ``offset``; fewer or none past its end."""

_EXIF_PREFIX = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112
_SHORT = 3
_MAX_IFD_ENTRIES = 1000  # 12 KB of directory at most; IFD0 of a camera file has 10-20 entries
_XMP_ORIENTATION = re.compile(rb"tiff:Orientation\s*(?:=\s*[\"']|>)\s*([0-9]+)")


def orientation_in(read: Reader) -> int:
    """Orientation 1-8 from IFD0 of an EXIF block (``Exif\\0\\0`` prefix optional); 1 if absent or invalid.

    Random access through ``read``, so only the TIFF header and IFD0 are ever fetched. As
    browsers do, only a SHORT value counts; 0, 9 and up mean "as stored".
    """
    base = len(_EXIF_PREFIX) if read(0, len(_EXIF_PREFIX)) == _EXIF_PREFIX else 0
    head = read(base, 8)
    if len(head) < 8:
        return 1
    if head[:4] == b"II*\x00":
        order = "<"
    elif head[:4] == b"MM\x00*":
        order = ">"
    else:
        return 1
    (ifd,) = struct.unpack_from(order + "I", head, 4)
    raw_count = read(base + ifd, 2)
    if len(raw_count) < 2:
        return 1
    (count,) = struct.unpack(order + "H", raw_count)
    entries = read(base + ifd + 2, 12 * min(count, _MAX_IFD_ENTRIES))
    for at in range(0, len(entries) - 11, 12):
        tag, kind, n = struct.unpack_from(order + "HHI", entries, at)
        if tag == _ORIENTATION_TAG:
            if kind != _SHORT or n < 1:
                return 1
            (value,) = struct.unpack_from(order + "H", entries, at + 8)
            return valid_orientation(value)
    return 1


def orientation_from_exif(exif: bytes) -> int:
    """``orientation_in`` over bytes already in memory."""
    return orientation_in(lambda at, n: exif[at : at + n])


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
    digits = match.group(1) if match else b""
    # int() refuses over 4,300 digits; anything past a few is invalid anyway.
    return valid_orientation(int(digits)) if 0 < len(digits) <= 3 else 1


def valid_orientation(value: int) -> int:
    return value if 1 <= value <= 8 else 1  # 0, 9 and anything else mean "as stored"
