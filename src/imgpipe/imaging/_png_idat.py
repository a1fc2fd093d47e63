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
_STORED = 0xFFFF  # the most one stored block holds
# isal's stub types its error as an instance, not a class
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


def with_stored_idat(data: bytes, cap: int = MAX_INFLATED) -> bytearray | None:
    """The PNG with its IDAT data inflated into stored blocks, or None to leave it as it is."""
    if len(data) < MIN_FILE or not data.startswith(_SIGNATURE):
        return None
    walked = _idat_run(data)
    if walked is None:
        return None
    first, end, pieces = walked
    inflater = isal_zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(pieces), cap + 1)
    except _INFLATE_ERROR:
        return None
    if not inflater.eof or inflater.unused_data or len(raw) > cap:
        return None
    return _rewritten(data, first, end, raw)


def _idat_run(data: bytes) -> tuple[int, int, list[memoryview]] | None:
    """(offset of the first IDAT chunk, offset past the last, their payloads), all CRCs checked."""
    view = memoryview(data)
    pieces: list[memoryview] = []
    first = end = 0
    pos = len(_SIGNATURE)
    while pos + 12 <= len(data):
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


def _rewritten(data: bytes, first: int, end: int, raw: bytes) -> bytearray:
    """``data`` with [first, end) replaced by one IDAT chunk holding ``raw`` in stored blocks."""
    blocks = max(1, -(-len(raw) // _STORED))
    payload = 2 + 5 * blocks + len(raw) + 4  # zlib header, block headers, data, Adler-32
    out = bytearray(first + 12 + payload + len(data) - end)
    out[:first] = memoryview(data)[:first]
    at = first
    out[at : at + 8] = payload.to_bytes(4, "big") + b"IDAT"
    at += 8
    out[at : at + 2] = b"\x78\x01"  # deflate, 32 KiB window, no dictionary, fastest
    at += 2
    source = memoryview(raw)
    for start in range(0, blocks * _STORED, _STORED):
        piece = source[start : start + _STORED]
        size = len(piece)
        final = 1 if start + _STORED >= len(raw) else 0
        out[at : at + 5] = bytes((final, size & 0xFF, size >> 8, ~size & 0xFF, (~size >> 8) & 0xFF))
        out[at + 5 : at + 5 + size] = piece
        at += 5 + size
    out[at : at + 4] = isal_zlib.adler32(raw).to_bytes(4, "big")
    at += 4
    chunk = memoryview(out)[first + 4 : at]
    out[at : at + 4] = isal_zlib.crc32(chunk).to_bytes(4, "big")
    chunk.release()
    at += 4
    out[at:] = memoryview(data)[end:]
    return out
