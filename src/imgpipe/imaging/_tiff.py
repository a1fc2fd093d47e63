"""TIFF header probe: classic and BigTIFF, first IFD only, with every strip or tile checked against the file."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from imgpipe.domain.errors import CorruptImage, ImageTooLarge
from imgpipe.imaging._exif import valid_orientation
from imgpipe.imaging._header import Header, checked_info
from imgpipe.imaging._source import Source, Truncated
from imgpipe.imaging.types import ImageFormat, Limits

__all__ = ["probe_tiff"]

# Field type -> (struct code, size). Types we never read are still sized, to find out-of-line values.
_TYPES = {1: ("B", 1), 2: ("B", 1), 3: ("H", 2), 4: ("I", 4), 5: ("Q", 8), 6: ("b", 1), 7: ("B", 1),
          8: ("h", 2), 9: ("i", 4), 10: ("q", 8), 11: ("f", 4), 12: ("d", 8), 13: ("I", 4),
          16: ("Q", 8), 17: ("q", 8), 18: ("Q", 8)}  # fmt: skip
_WIDTH, _LENGTH, _BITS, _PHOTOMETRIC, _SAMPLES, _PLANAR = 256, 257, 258, 262, 277, 284
_ROWS_PER_STRIP, _STRIP_OFFSETS, _STRIP_COUNTS = 278, 273, 279
_ORIENTATION = 274
_TILE_W, _TILE_H, _TILE_OFFSETS, _TILE_COUNTS = 322, 323, 324, 325
_SCALARS = frozenset(
    {_WIDTH, _LENGTH, _PHOTOMETRIC, _SAMPLES, _PLANAR, _ROWS_PER_STRIP, _TILE_W, _TILE_H, _ORIENTATION}
)
_ARRAYS = frozenset({_BITS, _STRIP_OFFSETS, _STRIP_COUNTS, _TILE_OFFSETS, _TILE_COUNTS})
_MAX_ENTRIES = 4096
_MAX_ARRAY = 1_000_000  # strips or tiles: a 25 MB file cannot hold more that are non-empty
_LAB = frozenset({8, 9, 10})  # CIELab, ICCLab, ITULab: libvips' tiffload refuses 8-bit Lab
_VIPS_BITS = frozenset({1, 2, 4, 8, 16, 32})
_SAMPLE_FACTOR = 4  # samples allowed per pixel at the pixel limit: RGBA


@dataclass
class _Ifd:
    scalars: dict[int, int] = field(default_factory=dict)
    arrays: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)  # tag -> type, count, offset, inline
    truncated: bool = False


def probe_tiff(src: Source, limits: Limits) -> Header:
    head = src.read(0, 16 if src.size >= 16 else 8, "TIFF header")
    order = "<" if head[:2] == b"II" else ">"
    big = struct.unpack_from(order + "H", head, 2)[0] == 43
    if big:
        if len(head) < 16 or struct.unpack_from(order + "HH", head, 4) != (8, 0):
            raise CorruptImage("The BigTIFF header is invalid.")
        ifd_offset = struct.unpack_from(order + "Q", head, 8)[0]
    else:
        ifd_offset = struct.unpack_from(order + "I", head, 4)[0]
    ifd = _read_ifd(src, order, big, ifd_offset)
    width, height = ifd.scalars.get(_WIDTH, 0), ifd.scalars.get(_LENGTH, 0)
    if not width or not height:
        raise CorruptImage("The TIFF does not declare its width and height.")
    info = checked_info(ImageFormat.TIFF, width, height, limits)
    samples = ifd.scalars.get(_SAMPLES, 1)
    # Checks run from what the header declares, worst first: an inconsistent strip table
    # is corruption, an absurd sample count is a memory bomb, and only then does a cut-off
    # directory count as a truncated file.
    _check_strips(src, order, ifd, width, height, samples)
    if samples < 1 or width * height * samples > _SAMPLE_FACTOR * limits.max_pixels:
        raise ImageTooLarge(f"The TIFF declares {samples:,} samples per pixel; this server cannot decode that.")
    if ifd.truncated:
        raise CorruptImage("The TIFF directory is truncated.")
    bits = _array(src, order, ifd, _BITS)[:samples] or [1]
    libvips = ifd.scalars.get(_PHOTOMETRIC, 1) not in _LAB and set(bits) <= _VIPS_BITS
    # libtiff ignores an Orientation outside 1-8 (and so does libvips, and Pillow's exif_transpose).
    orientation = valid_orientation(ifd.scalars.get(_ORIENTATION, 1))
    return Header(info, orientation=orientation, libvips_tiff=libvips)


def _read_ifd(src: Source, order: str, big: bool, offset: int) -> _Ifd:
    count_size, entry_size = (8, 20) if big else (2, 12)
    count_raw = src.read(offset, count_size, "TIFF directory")
    count = struct.unpack(order + ("Q" if big else "H"), count_raw)[0]
    if count == 0 or count > _MAX_ENTRIES:
        raise CorruptImage("The TIFF directory has no entries or an absurd number of them.")
    ifd = _Ifd()
    for i in range(count):
        try:
            entry = src.read(offset + count_size + i * entry_size, entry_size, "TIFF directory entry")
        except Truncated:
            ifd.truncated = True
            break
        if big:
            tag, kind, n = struct.unpack_from(order + "HHQ", entry)
        else:
            tag, kind, n = struct.unpack_from(order + "HHI", entry)
        inline_at = offset + count_size + i * entry_size + (12 if big else 8)
        # The first of duplicated tags wins, as in libtiff.
        # A LONG8 fits inline in BigTIFF only; in classic TIFF it is malformed and ignored.
        if tag in _SCALARS and kind in ((3, 4, 16) if big else (3, 4)) and n >= 1:
            value = struct.unpack_from(order + _TYPES[kind][0], entry, 12 if big else 8)[0]
            ifd.scalars.setdefault(tag, value)
        elif tag in _ARRAYS and kind in (3, 4, 16) and n >= 1:
            ifd.arrays.setdefault(tag, (kind, n, _value_offset(entry, order, big, kind, n), inline_at))
    return ifd


def _value_offset(entry: bytes, order: str, big: bool, kind: int, n: int) -> int:
    """-1 when the values fit inline in the entry, else the file offset they live at."""
    inline = 8 if big else 4
    if _TYPES[kind][1] * n <= inline:
        return -1
    return int(struct.unpack_from(order + ("Q" if big else "I"), entry, 12 if big else 8)[0])


def _array(src: Source, order: str, ifd: _Ifd, tag: int) -> list[int]:
    if tag not in ifd.arrays:
        return []
    kind, n, offset, inline_at = ifd.arrays[tag]
    if n > _MAX_ARRAY:
        raise CorruptImage("A TIFF strip or tile table is absurdly long.")
    code, size = _TYPES[kind]
    raw = src.read(inline_at if offset < 0 else offset, size * n, "TIFF value array")
    return [v for (v,) in struct.iter_unpack(order + code, raw)]


def _check_strips(src: Source, order: str, ifd: _Ifd, width: int, height: int, samples: int) -> None:
    """Enough strips (or tiles) for the declared size, each inside the file."""
    tiled = _TILE_OFFSETS in ifd.arrays
    offsets_tag, counts_tag = (_TILE_OFFSETS, _TILE_COUNTS) if tiled else (_STRIP_OFFSETS, _STRIP_COUNTS)
    if offsets_tag not in ifd.arrays:
        return  # nothing declared yet (a truncated directory is reported later)
    if tiled:
        tile_w, tile_h = ifd.scalars.get(_TILE_W, 0), ifd.scalars.get(_TILE_H, 0)
        if not tile_w or not tile_h:
            raise CorruptImage("The tiled TIFF does not declare its tile size.")
        expected = math.ceil(width / tile_w) * math.ceil(height / tile_h)
    else:
        rows = ifd.scalars.get(_ROWS_PER_STRIP, 0) or height
        expected = math.ceil(height / min(rows, height))
    if ifd.scalars.get(_PLANAR, 1) == 2:
        expected *= max(samples, 1)
    if ifd.arrays[offsets_tag][1] < expected:
        raise CorruptImage("The TIFF has fewer strips or tiles than its size needs.")
    offsets = _array(src, order, ifd, offsets_tag)
    counts = _array(src, order, ifd, counts_tag)
    for offset, count in zip(offsets, counts, strict=False):
        if offset + count > src.size:
            raise CorruptImage("A TIFF strip or tile lies beyond the end of the file.")
