"""PNG header probe: IHDR, then every chunk header to IEND, inflating text and ICC chunks under a cap."""

from __future__ import annotations

import zlib

from imgpipe.domain.errors import CorruptImage, ImageTooLarge
from imgpipe.imaging._exif import orientation_from_exif, orientation_from_raw_profile, orientation_from_xmp
from imgpipe.imaging._header import Header, checked_info
from imgpipe.imaging._source import Source
from imgpipe.imaging.types import ImageFormat, Limits

__all__ = ["probe_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BIT_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
_CRITICAL = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
_MAX_CHUNKS = 200_000  # encoders write 8-64 KiB IDATs: a 25 MB file has a few thousand chunks
# Inflation caps for zTXt/iTXt/iCCP: Pillow's MAX_TEXT_CHUNK per chunk, 8 MiB in all.
_CHUNK_CAP = 1024 * 1024
_TOTAL_CAP = 8 * 1024 * 1024
_PIECE = 64 * 1024
_ORIENTATION_KEYWORDS = frozenset({b"Raw profile type exif", b"Raw profile type APP1"})
_XMP_KEYWORD = b"XML:com.adobe.xmp"


def probe_png(src: Source, limits: Limits) -> Header:
    if src.read(0, 8, "PNG signature") != _SIGNATURE:
        raise CorruptImage("The PNG signature is damaged (often a text-mode transfer).")
    ihdr = src.read(8, 25, "PNG IHDR chunk")
    if ihdr[:8] != b"\x00\x00\x00\x0dIHDR":
        raise CorruptImage("The PNG does not start with a 13-byte IHDR chunk.")
    if zlib.crc32(ihdr[4:21]) != int.from_bytes(ihdr[21:25], "big"):
        raise CorruptImage("The PNG IHDR chunk fails its CRC check.")
    width, height = int.from_bytes(ihdr[8:12], "big"), int.from_bytes(ihdr[12:16], "big")
    depth, colour, compression, filtering, interlace = ihdr[16:21]
    if width > 2**31 - 1 or height > 2**31 - 1 or depth not in _BIT_DEPTHS.get(colour, set()):
        raise CorruptImage("The PNG IHDR declares an invalid size, colour type or bit depth.")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise CorruptImage("The PNG IHDR declares an unknown compression, filter or interlace method.")
    info = checked_info(ImageFormat.PNG, width, height, limits)
    return Header(info, orientation=_walk_chunks(src, colour))


def _walk_chunks(src: Source, colour: int) -> int:
    """Check every chunk lies inside the file up to IEND; return the orientation found on the way."""
    budget = [_TOTAL_CAP]
    exif_orientation = raw_orientation = xmp_orientation = 0
    seen_idat = seen_plte = False
    pos = 33
    for _ in range(_MAX_CHUNKS):
        head = src.read(pos, 8, "PNG chunk header")
        length, kind = int.from_bytes(head[:4], "big"), head[4:]
        body = pos + 8
        if length > 2**31 - 1 or not kind.isalpha():
            raise CorruptImage("A PNG chunk has an invalid length or type.")
        src.read(body + length, 4, "PNG chunk")  # the CRC must be in the file: catches truncation
        if kind == b"IEND":
            if not seen_idat:
                raise CorruptImage("The PNG has no image data (IDAT).")
            break
        if kind == b"IDAT":
            if colour == 3 and not seen_plte:
                raise CorruptImage("The palette PNG has no palette before its image data.")
            seen_idat = True
        elif kind == b"PLTE":
            seen_plte = True
        elif kind[0:1].isupper() and kind not in _CRITICAL:
            raise CorruptImage("The PNG has an unknown critical chunk.")
        elif kind == b"eXIf" and length <= _CHUNK_CAP:
            exif_orientation = exif_orientation or orientation_from_exif(src.read(body, length, "PNG eXIf"))
        elif kind in (b"tEXt", b"zTXt", b"iTXt", b"iCCP"):
            keyword, text = _text_chunk(src, kind, body, length, budget)
            if keyword in _ORIENTATION_KEYWORDS and text:
                raw_orientation = raw_orientation or orientation_from_raw_profile(text)
            elif keyword == _XMP_KEYWORD and text:
                xmp_orientation = xmp_orientation or orientation_from_xmp(text)
        pos = body + length + 4
    else:
        raise CorruptImage("The PNG has too many chunks.")
    # eXIf is the standard place; ImageMagick's raw profile and XMP are fallbacks.
    return exif_orientation or raw_orientation or xmp_orientation or 1


def _text_chunk(src: Source, kind: bytes, body: int, length: int, budget: list[int]) -> tuple[bytes, bytes]:
    """(keyword, text) of a text or ICC chunk; compressed payloads are inflated under the caps."""
    head = src.read(body, min(length, 80), "PNG text chunk")
    nul = head.find(b"\x00")
    if nul <= 0:
        return b"", b""  # a malformed ancillary chunk: decoders skip it, so do we
    keyword, start = head[:nul], body + nul + 1
    end = body + length
    if kind == b"tEXt":
        wanted = keyword in _ORIENTATION_KEYWORDS and end - start <= _CHUNK_CAP
        return keyword, src.read(start, end - start, "PNG text") if wanted else b""
    if kind in (b"zTXt", b"iCCP"):
        if src.read(start, 1, "PNG compression method") != b"\x00":
            raise CorruptImage("A PNG chunk uses an unknown compression method.")
        return keyword, _inflate(src, start + 1, end, budget)
    # iTXt: compression flag, method, language tag NUL, translated keyword NUL, text.
    rest = src.read(start, min(end - start, 512), "PNG iTXt header")
    if len(rest) < 2:
        return keyword, b""
    nul1 = rest.find(b"\x00", 2)
    nul2 = rest.find(b"\x00", nul1 + 1) if nul1 >= 0 else -1
    if nul2 < 0:
        return keyword, b""
    text_at = start + nul2 + 1
    if rest[0] == 1:
        if rest[1] != 0:
            raise CorruptImage("A PNG chunk uses an unknown compression method.")
        return keyword, _inflate(src, text_at, end, budget)
    if keyword == _XMP_KEYWORD and end - text_at <= _CHUNK_CAP:
        return keyword, src.read(text_at, end - text_at, "PNG iTXt")
    return keyword, b""


def _inflate(src: Source, start: int, end: int, budget: list[int]) -> bytes:
    """Inflate [start, end) piece by piece; ImageTooLarge past the per-chunk or total cap."""
    inflater = zlib.decompressobj()
    out: list[bytes] = []
    produced = 0
    pos = start
    try:
        while pos < end and not inflater.eof:
            data = src.read(pos, min(_PIECE, end - pos), "PNG compressed chunk")
            pos += len(data)
            while data and not inflater.eof:
                # max_length is always >= 1 here: 0 would mean "unlimited".
                piece = inflater.decompress(data, _CHUNK_CAP + 1 - produced)
                produced += len(piece)
                out.append(piece)
                if produced > _CHUNK_CAP or produced > budget[0]:
                    raise ImageTooLarge("A PNG text or ICC chunk inflates beyond what this server accepts.")
                data = inflater.unconsumed_tail
    except zlib.error:
        return b""  # damaged ancillary data: libpng warns and drops the chunk
    budget[0] -= produced
    return b"".join(out)
