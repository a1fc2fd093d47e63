"""A PNG's image data inflated by ISA-L before libvips reads the file.

libvips' pngload (libspng over zlib-ng) spends more than half of a photograph's decode in
inflate: 30 of 53 ms for a 4 MP RGB PNG here, where ISA-L (the ``isal`` wheel) inflates the
same stream in 17. ``with_stored_idat`` rewrites the file with its image data inflated and
wrapped in deflate's *stored* blocks, which zlib-ng only copies, so libvips is left to
unfilter rows: the same filtered bytes, hence the same pixels and the same errors.

Anything out of the ordinary goes to libvips untouched (None): a small file, a stream ISA-L
refuses, a chunk failing its CRC, image data past the cap, IDAT chunks that are not
consecutive, bytes after the stream's end. libvips then decides with its own errors.
"""

from __future__ import annotations

from isal import isal_zlib

__all__ = ["MAX_INFLATED", "MIN_FILE", "with_stored_idat"]

# Above this much image data the file stays compressed: the rewrite holds the inflated data
# twice for a moment (72 MiB at most), where libvips streams rows. 36 MiB takes a 12 MP RGB PNG.
MAX_INFLATED = 36 * 1024 * 1024
# Below this the rewrite's fixed costs (a chunk walk in Python, one more buffer) outweigh it.
MIN_FILE = 128 * 1024
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Encoders write 8-64 KiB IDATs (a 25 MB file has a few thousand chunks); a walk in Python
# over tens of thousands of tiny ones would cost more than it saves.
_MAX_CHUNKS = 10_000
_STORED = 0xFFFF  # the most one stored block holds
# isal's stub types its error as an instance, not a class
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


def with_stored_idat(data: bytes, cap: int = MAX_INFLATED) -> bytes | None:
    """The PNG with its IDAT data inflated into stored blocks, or None to leave it as it is."""
    if len(data) < MIN_FILE or not data.startswith(_SIGNATURE):
        return None
    walked = _idat_run(data)
    if walked is None:
        return None
    first, end, pieces = walked
    stream = b"".join(pieces)
    inflater = isal_zlib.decompressobj()
    try:
        raw = inflater.decompress(stream, cap + 1)
    except _INFLATE_ERROR:
        return None
    if not inflater.eof or inflater.unused_data or len(raw) > cap:
        return None
    # The stream ends exactly at its Adler-32 of ``raw``, which ISA-L has just checked.
    return _rewritten(data, first, end, raw, stream[-4:])


def _idat_run(data: bytes) -> tuple[int, int, list[memoryview]] | None:
    """(offset of the first IDAT chunk, offset past the last, their payloads), all CRCs checked."""
    view = memoryview(data)
    pieces: list[memoryview] = []
    first = end = 0
    pos = len(_SIGNATURE)
    for _ in range(_MAX_CHUNKS):
        if pos + 12 > len(data):
            return None
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        after = pos + 12 + length
        if after > len(data):
            return None
        if kind == b"IDAT":
            if pieces and pos != end:
                return None  # image data split by another chunk: the standard forbids it
            crc = int.from_bytes(data[after - 4 : after], "big")
            if isal_zlib.crc32(view[pos + 4 : after - 4]) != crc:
                return None
            pieces.append(view[pos + 8 : after - 4])
            first, end = (first or pos), after
        elif kind == b"IEND":
            return (first, end, pieces) if pieces else None
        pos = after
    return None


def _rewritten(data: bytes, first: int, end: int, raw: bytes, adler: bytes) -> bytes:
    """``data`` with [first, end) replaced by one IDAT chunk holding ``raw`` in stored blocks."""
    source = memoryview(raw)
    payload: list[bytes | memoryview] = [b"\x78\x01"]  # deflate, 32 KiB window, no dictionary, fastest
    for start in range(0, max(len(raw), 1), _STORED):
        piece = source[start : start + _STORED]
        size, final = len(piece), start + _STORED >= len(raw)
        payload += (bytes((final, size & 0xFF, size >> 8, ~size & 0xFF, (~size >> 8) & 0xFF)), piece)
    payload.append(adler)
    crc = isal_zlib.crc32(b"IDAT")
    for part in payload:
        crc = isal_zlib.crc32(part, crc)
    length = sum(len(part) for part in payload)
    # One join, one copy: no zero-filled buffer to write over.
    head = (memoryview(data)[:first], length.to_bytes(4, "big"), b"IDAT")
    return b"".join((*head, *payload, crc.to_bytes(4, "big"), memoryview(data)[end:]))
