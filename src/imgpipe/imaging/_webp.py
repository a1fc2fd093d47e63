"""WebP header probe: the RIFF container and the first VP8, VP8L or VP8X chunk (and its first frame).

A VP8X file that flags EXIF has its orientation read from the EXIF chunk, which usually
follows the image data: the walk there reads chunk headers only, and gives up quietly.
"""

from __future__ import annotations

from imgpipe.domain.errors import CorruptImage
from imgpipe.imaging._exif import orientation_in
from imgpipe.imaging._header import Header, checked_info
from imgpipe.imaging._source import Source
from imgpipe.imaging.types import ImageFormat, ImageInfo, Limits

__all__ = ["probe_webp"]

_MAX_CHUNKS = 1000  # chunks scanned after VP8X to find the first image: ICCP, ANIM, EXIF, XMP come first
_MAX_EXIF_WALK = 100_000  # chunks skipped looking for EXIF: it comes after every frame of an animation
_EXIF_FLAG = 0x08  # VP8X flags: libwebp (and so libvips) only looks for EXIF when this is set


def probe_webp(src: Source, limits: Limits) -> Header:
    riff = src.read(0, 12, "WebP RIFF header")
    riff_end = 8 + int.from_bytes(riff[4:8], "little")
    if riff_end < 20 or riff_end > src.size:
        raise CorruptImage("The WebP RIFF size is wrong: the file is truncated or damaged.")
    kind, size, at = _chunk(src, 12, riff_end)
    if kind == b"VP8X":
        body = src.read(at, 10, "WebP VP8X chunk")
        width = 1 + int.from_bytes(body[4:7], "little")
        height = 1 + int.from_bytes(body[7:10], "little")
        if size < 10 or width * height >= 2**32:
            raise CorruptImage("The WebP VP8X chunk is invalid.")
        info = checked_info(ImageFormat.WEBP, width, height, limits)
        first = at + size + (size & 1)
        _check_first_frame(src, first, riff_end, info, animated=bool(body[0] & 0x02))
        orientation = _exif_orientation(src, first, riff_end) if body[0] & _EXIF_FLAG else 1
        return Header(info, orientation=orientation)
    width, height = _bitstream_size(src, kind, at, size)
    return Header(checked_info(ImageFormat.WEBP, width, height, limits))


def _chunk(src: Source, pos: int, riff_end: int) -> tuple[bytes, int, int]:
    """(fourcc, size, body offset) of the chunk at ``pos``; the body must end inside the RIFF."""
    head = src.read(pos, 8, "WebP chunk header")
    size = int.from_bytes(head[4:8], "little")
    if pos + 8 + size > riff_end:
        raise CorruptImage("A WebP chunk runs past the end of its container.")
    return head[:4], size, pos + 8


def _bitstream_size(src: Source, kind: bytes, at: int, size: int) -> tuple[int, int]:
    if kind == b"VP8 ":
        frame = src.read(at, 10, "WebP VP8 frame header")
        if size < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
            raise CorruptImage("The WebP VP8 frame header is invalid.")
        width = int.from_bytes(frame[6:8], "little") & 0x3FFF
        height = int.from_bytes(frame[8:10], "little") & 0x3FFF
        return width, height
    if kind == b"VP8L":
        frame = src.read(at, 5, "WebP VP8L header")
        bits = int.from_bytes(frame[1:5], "little")
        if size < 5 or frame[0] != 0x2F or bits >> 29 != 0:
            raise CorruptImage("The WebP VP8L header is invalid.")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    raise CorruptImage("The WebP has no VP8, VP8L or VP8X chunk first.")


def _check_first_frame(src: Source, pos: int, riff_end: int, info: ImageInfo, *, animated: bool) -> None:
    """A still image must match the canvas; a first animation frame must lie inside it (as libwebp checks)."""
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > riff_end:
            break
        kind, size, at = _chunk(src, pos, riff_end)
        if animated and kind == b"ANMF":
            frame = src.read(at, 16, "WebP ANMF frame header")
            x, y = 2 * int.from_bytes(frame[0:3], "little"), 2 * int.from_bytes(frame[3:6], "little")
            w, h = 1 + int.from_bytes(frame[6:9], "little"), 1 + int.from_bytes(frame[9:12], "little")
            if size < 16 or x + w > info.width or y + h > info.height:
                raise CorruptImage("A WebP animation frame lies outside the canvas.")
            return
        if not animated and kind in (b"VP8 ", b"VP8L"):
            if _bitstream_size(src, kind, at, size) != (info.width, info.height):
                raise CorruptImage("The WebP image size disagrees with its VP8X canvas.")
            return
        pos = at + size + (size & 1)
    raise CorruptImage("The WebP VP8X container holds no image.")


def _exif_orientation(src: Source, pos: int, riff_end: int) -> int:
    """Orientation from the first EXIF chunk at or after ``pos``; 1 when there is none or the walk goes wrong."""
    for _ in range(_MAX_EXIF_WALK):
        head = src.read_upto(pos, 8) if pos + 8 <= riff_end else b""
        if len(head) < 8:
            return 1
        size = int.from_bytes(head[4:8], "little")
        if pos + 8 + size > riff_end:
            return 1
        if head[:4] == b"EXIF":
            return orientation_in(src.reader(pos + 8, size))
        pos += 8 + size + (size & 1)
    return 1
