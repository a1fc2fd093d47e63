"""JPEG header probe: walk the markers to the first SOFn without reading entropy-coded data.

The orientation comes from the first APP1 segment that holds EXIF (as libjpeg-based
browsers and Pillow take it), read in place: only its TIFF header and IFD0 are fetched.
"""

from __future__ import annotations

from imgpipe.domain.errors import CorruptImage
from imgpipe.imaging._exif import orientation_in
from imgpipe.imaging._header import Header, checked_info
from imgpipe.imaging._source import Cursor, Source
from imgpipe.imaging.types import ImageFormat, Limits

__all__ = ["probe_jpeg"]

# SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_APP1 = 0xE1
_EXIF = b"Exif\x00\x00"
_MAX_SEGMENTS = 10_000  # a 25 MB file of minimal segments would have ~6M; real files have < 100
_MAX_JUNK = 64 * 1024  # stray bytes between segments that libjpeg skips with a warning


def probe_jpeg(src: Source, limits: Limits) -> Header:
    if src.read(0, 2, "JPEG signature") != b"\xff\xd8":
        raise CorruptImage("The JPEG signature is damaged.")
    cur = src.cursor(2, window=4096)  # small: most of a JPEG header is skipped, not read
    orientation: int | None = None
    for _ in range(_MAX_SEGMENTS):
        marker = _marker(cur)
        if marker is None:
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            raise CorruptImage("The JPEG has no frame header (SOF) before its image data or end.")
        length = _length(cur)
        if marker == _APP1 and orientation is None:
            orientation = _exif_orientation(src, cur.offset, length - 2)
        if marker not in _SOF:
            cur.skip(length - 2, "JPEG segment")  # APPn (EXIF, a 500 KB ICC in APP2...), DQT, DHT, COM
            continue
        body = cur.take(length - 2, "JPEG frame header")
        if len(body) < 6:
            raise CorruptImage("The JPEG frame header is too short.")
        height = int.from_bytes(body[1:3], "big")
        width = int.from_bytes(body[3:5], "big")
        components = body[5]
        if components == 0 or len(body) < 6 + 3 * components:
            raise CorruptImage("The JPEG frame header lists no or truncated components.")
        # Height 0 means "defined later by a DNL marker", which libjpeg does not support.
        info = checked_info(ImageFormat.JPEG, width, height, limits)
        if orientation is None:
            orientation = _orientation_after_frame(src, cur)
        return Header(info, orientation=orientation)
    raise CorruptImage("The JPEG header has too many segments before its frame header.")


def _marker(cur: Cursor) -> int | None:
    """The next marker code; None for a stuffed zero or a standalone marker (nothing to skip)."""
    if cur.find(0xFF, _MAX_JUNK) < 0:
        raise CorruptImage("The JPEG header has no frame marker (SOF) before the end of the file.")
    marker = 0xFF
    for _fill in range(_MAX_JUNK):  # 0xFF fill bytes may pad before a marker
        marker = cur.u8("JPEG marker")
        if marker != 0xFF:
            break
    if marker == 0xFF:
        raise CorruptImage("The JPEG header is padded with too many fill bytes.")
    if marker == 0x00 or marker in _STANDALONE:
        return None
    return marker


def _length(cur: Cursor) -> int:
    length = int.from_bytes(cur.take(2, "JPEG segment length"), "big")
    if length < 2:
        raise CorruptImage("A JPEG segment declares an impossible length.")
    return length


def _exif_orientation(src: Source, offset: int, size: int) -> int | None:
    """The orientation in the APP1 segment body at ``offset``; None if it holds no EXIF (XMP...)."""
    read = src.reader(offset, size)
    return orientation_in(read) if read(0, len(_EXIF)) == _EXIF else None


def _orientation_after_frame(src: Source, cur: Cursor) -> int:
    """libjpeg reads APPn segments up to the scan, so EXIF may follow the frame header.

    Best effort: the size is known by now, and whatever is wrong here is left to the decoder.
    """
    try:
        for _ in range(_MAX_SEGMENTS):
            marker = _marker(cur)
            if marker is None:
                continue
            if marker in (0xD8, 0xD9, 0xDA):
                return 1
            length = _length(cur)
            if marker == _APP1:
                found = _exif_orientation(src, cur.offset, length - 2)
                if found is not None:
                    return found
            cur.skip(length - 2, "JPEG segment")
    except CorruptImage:
        pass
    return 1
