"""A PNG's image data inflated by ISA-L before libvips reads the file.

libvips' pngload (libpng over zlib-ng, in pyvips-binary) spends more than half of a
photograph's decode in inflate: 30 of 53 ms for a 4 MP RGB PNG here, where ISA-L (the
``isal`` wheel) inflates the same stream in 17. ``with_stored_idat`` rewrites the file with
its image data inflated and wrapped in deflate's *stored* blocks, which zlib-ng only copies,
so libvips is left to unfilter rows: the same filtered bytes, hence the same pixels.

The rewrite is made only when the stream holds exactly the rows the header promises, within
the window it declares (zlib enforces it, ISA-L does not), with a checked Adler-32. Anything
else goes to libvips untouched (None) and fails or loads there as before: a small file, a
stream ISA-L refuses, a chunk failing its CRC, too little or too much image data, IDAT
chunks that are not consecutive, bytes after the stream's end. One leniency remains: ISA-L
decodes some Huffman tables zlib calls invalid (an over-subscribed distance code set), and
such a stream whose output passes its Adler-32 renders where libvips alone would refuse it.
``tests/unit/imaging/test_png_idat.py`` checks that ISA-L never decodes different data.
"""

from __future__ import annotations

from isal import isal_zlib

__all__ = ["MAX_INFLATED", "MIN_FILE", "filtered_size", "with_stored_idat"]

# Above this much image data the file stays compressed: the rewrite holds it inflated twice
# for a moment, where libvips streams rows. 36 MiB takes a 12 MP RGB PNG.
MAX_INFLATED = 36 * 1024 * 1024
# Below this the rewrite's fixed costs (a chunk walk in Python, one more buffer) outweigh it.
MIN_FILE = 128 * 1024
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Encoders write 8-64 KiB IDATs (a 25 MB file has a few thousand chunks); a walk in Python
# over tens of thousands of tiny ones would cost more than it saves.
_MAX_CHUNKS = 10_000
_STORED = 0xFFFF  # the most one stored block holds
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
# Adam7: (first column, first row, column step, row step) of each pass
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
# isal's stub types its error as an instance, not a class
_INFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]


def with_stored_idat(data: bytes, cap: int = MAX_INFLATED) -> bytes | None:
    """The PNG with its IDAT data inflated into stored blocks, or None to leave it as it is."""
    if len(data) < MIN_FILE or not data.startswith(_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    expected = filtered_size(data[16:29])
    if expected is None or expected > cap:
        return None
    walked = _idat_run(data)
    if walked is None:
        return None
    first, end, pieces = walked
    stream = b"".join(pieces)
    # Deflate, no preset dictionary, and a window that holds every match: ISA-L ignores the
    # declared window, where zlib refuses a distance past it. libpng declares a small one for
    # small images, which is fine when the whole data fits in it.
    if len(stream) < 6 or stream[0] & 0x0F != 8 or stream[1] & 0x20:
        return None
    window_bits = (stream[0] >> 4) + 8
    if window_bits > 15 or (window_bits < 15 and expected > 1 << window_bits):
        return None
    inflater = isal_zlib.decompressobj()
    try:
        raw = inflater.decompress(stream, expected + 1)
    except _INFLATE_ERROR:
        return None
    if not inflater.eof or inflater.unused_data or len(raw) != expected:
        return None
    # The stream ends exactly at its Adler-32 of ``raw``, which ISA-L has just checked.
    return _rewritten(data, first, end, raw, stream[-4:])


def filtered_size(ihdr: bytes) -> int | None:
    """Bytes of filtered rows (a filter byte each) an IHDR's image inflates to; None for a header libvips must judge."""
    if len(ihdr) != 13:
        return None
    width, height = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
    depth, colour, interlace = ihdr[8], ihdr[9], ihdr[12]
    channels = _CHANNELS.get(colour)
    if channels is None or depth not in (1, 2, 4, 8, 16) or interlace not in (0, 1) or not width or not height:
        return None
    bits = depth * channels
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        columns, rows = -(-max(width - x0, 0) // dx), -(-max(height - y0, 0) // dy)
        if columns and rows:
            total += rows * (1 + -(-columns * bits // 8))
    return total


def _idat_run(data: bytes) -> tuple[int, int, list[memoryview]] | None:
    """(offset of the first IDAT chunk, offset past the last, their payloads), all CRCs checked."""
    view = memoryview(data)
    pieces: list[memoryview] = []
    first: int | None = None
    end = 0
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
            first = pos if first is None else first
            end = after
        elif kind == b"IEND":
            return (first, end, pieces) if first is not None else None
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
