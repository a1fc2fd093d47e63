"""Progressive JPEG at 1/8 scale: the same file without the AC scans such a decode never reads.

At 1/8 scale libjpeg-turbo decodes each block of a full-resolution component to one
pixel from its DC coefficient alone (the 1x1 inverse DCT); subsampled chroma is decoded
at 2x2 or more, from its low AC coefficients. A progressive file sends the DC
coefficients in scans of their own, so the AC scans of the full-resolution components
can be dropped unread. They are most of the file and of the decode: 3 to 4 times the
time of the rest on the photographs in ``bench/``.

Dropped outright, they would leave those coefficients "not yet sent", and libjpeg's
block smoothing would then invent them, changing the pixels. So each dropped component
gets one appended scan saying its AC coefficients are all zero, exactly: an end-of-band
run over every block, a few bytes. The decode is then pixel for pixel the decode of the
whole file (``tests/unit/imaging/test_progressive.py`` checks it on every progressive
JPEG in the corpus).

Anything unexpected (not progressive Huffman, truncated, too many scans, a marker where
none belongs) returns None, and the caller decodes the file as it is.
"""

from __future__ import annotations

import re

__all__ = ["dc_only"]

_SOF2 = 0xC2  # progressive, Huffman: the only one rewritten
_OTHER_SOF = frozenset(range(0xC0, 0xD0)) - {0xC2, 0xC4, 0xC8, 0xCC}
_SOS, _EOI = 0xDA, 0xD9
# A marker after entropy-coded data: 0xFF then anything but a stuffed zero, RST0-7 or fill.
_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_MAX_SCANS = 1000  # real files have about ten; more is a scan bomb, left to the plain path
_MAX_SEGMENTS = 10_000
_MAX_RUN = 32767  # the longest end-of-band run one symbol can carry (EOB14 and 14 extra bits)

# An AC Huffman table holding EOB0..EOB14 (symbols 0x00, 0x10, ... 0xE0), code r for EOBr, 4 bits each.
_EOB_TABLE = bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15))
# Defined as AC table 0 (class 1, slot 0) after the last kept scan, so no scan of the file sees it.
_DHT_SEGMENT = b"\xff\xc4" + (2 + 1 + len(_EOB_TABLE)).to_bytes(2, "big") + b"\x10" + _EOB_TABLE
_NO_RESTARTS = b"\xff\xdd\x00\x04\x00\x00"  # DRI 0: the appended scans have no RST markers


class _Unexpected(Exception):
    pass


def dc_only(data: bytes) -> bytes | None:
    """``data`` without the AC scans of its full-resolution components, for a 1/8-scale decode; None if not done."""
    try:
        return _rewrite(data)
    except (_Unexpected, IndexError):
        return None


def _rewrite(data: bytes) -> bytes:
    pos, components = _frame(data)
    droppable = _eighth_scale_dc_only(components)
    kept: list[bytes] = []
    keep_from = 0
    for _ in range(_MAX_SCANS):
        # pos is at a SOS marker.
        header_end = pos + 2 + _u16(data, pos + 2)
        count = data[pos + 4]
        scan_components = {data[pos + 5 + 2 * i] for i in range(count)}
        spectral_start = data[pos + 5 + 2 * count]
        found = _MARKER.search(data, header_end)
        if found is None:
            raise _Unexpected("truncated scan")
        end = found.start()
        if spectral_start != 0 and scan_components <= droppable.keys():
            kept.append(data[keep_from:pos])
            keep_from = end
        pos = _next_scan(data, end)
        if pos < 0:  # EOI
            kept.append(data[keep_from:end])
            appended = [_DHT_SEGMENT, _NO_RESTARTS, *(_zero_ac_scan(c, n) for c, n in droppable.items())]
            return b"".join([*kept, *appended, b"\xff\xd9"])
    raise _Unexpected("too many scans")


def _frame(data: bytes) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """Walk the header to the first SOS: (its offset, [(id, h, v, width, height)] from the SOF2)."""
    if data[:2] != b"\xff\xd8":
        raise _Unexpected("not a JPEG")
    pos, frame = 2, None
    for _ in range(_MAX_SEGMENTS):
        pos = _at_marker(data, pos)
        marker = data[pos + 1]
        if marker == _SOS:
            if frame is None:
                raise _Unexpected("no frame header")
            return pos, frame
        length = _u16(data, pos + 2)
        if marker in _OTHER_SOF or (marker == _SOF2 and frame is not None):
            raise _Unexpected("not a single progressive Huffman frame")
        if marker == _SOF2:
            frame = _components(data[pos + 4 : pos + 2 + length])
        pos += 2 + length
    raise _Unexpected("too many segments")


def _components(body: bytes) -> list[tuple[int, int, int, int, int]]:
    height, width, count = _u16(body, 1), _u16(body, 3), body[5]
    sampling = [(body[6 + 3 * i], body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count)]
    if not count or height == 0 or any(not h or not v for _, h, v in sampling):
        raise _Unexpected("odd frame header")
    h_max, v_max = max(h for _, h, _ in sampling), max(v for _, _, v in sampling)
    return [(cid, h, v, -(-width * h // h_max), -(-height * v // v_max)) for cid, h, v in sampling]


def _eighth_scale_dc_only(components: list[tuple[int, int, int, int, int]]) -> dict[int, int]:
    """{component id: its blocks} for the components libjpeg-turbo decodes with the 1x1 IDCT at 1/8 scale.

    jdmaster.c scales a subsampled component up by IDCT instead of upsampling: its DCT size
    doubles while the maximum sampling factors divide twice its own. Size 1 reads DC alone.
    """
    h_max, v_max = max(c[1] for c in components), max(c[2] for c in components)
    return {
        cid: -(-width // 8) * -(-height // 8)
        for cid, h, v, width, height in components
        if h_max % (2 * h) != 0 or v_max % (2 * v) != 0
    }


def _next_scan(data: bytes, pos: int) -> int:
    """From the marker that ended a scan, over any segments (DHT, DQT, COM...), to the next SOS; -1 at EOI."""
    for _ in range(_MAX_SEGMENTS):
        pos = _at_marker(data, pos)
        marker = data[pos + 1]
        if marker == _SOS:
            return pos
        if marker == _EOI:
            return -1  # whatever follows, libjpeg never reads
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8) or marker in _OTHER_SOF or marker == _SOF2:
            raise _Unexpected("a marker where none belongs")
        pos += 2 + _u16(data, pos + 2)
    raise _Unexpected("too many segments")


def _at_marker(data: bytes, pos: int) -> int:
    """``pos`` moved past fill bytes to the 0xFF that starts a marker."""
    while data[pos + 1] == 0xFF:
        pos += 1
    if data[pos] != 0xFF:
        raise _Unexpected("no marker where one belongs")
    return pos


def _zero_ac_scan(component: int, blocks: int) -> bytes:
    """A first AC scan (coefficients 1-63, no point transform) of ``component`` that sets every one to zero."""
    bits = value = 0
    out = bytearray()
    while blocks > 0:
        run = min(blocks, _MAX_RUN)
        blocks -= run
        r = run.bit_length() - 1
        value = (value << (4 + r)) | (r << r) | (run - (1 << r))  # code r (4 bits), then run - 2^r in r bits
        bits += 4 + r
        while bits >= 8:
            bits -= 8
            out.append((value >> bits) & 0xFF)
            if out[-1] == 0xFF:
                out.append(0)  # byte stuffing
        value &= (1 << bits) - 1
    if bits:
        out.append(((value << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xFF)  # pad with ones
        if out[-1] == 0xFF:
            out.append(0)
    # SOS: one component, AC table 0 (the one defined above), coefficients 1-63, Ah = Al = 0.
    return b"\xff\xda\x00\x08\x01" + bytes([component, 0x00]) + b"\x01\x3f\x00" + bytes(out)


def _u16(data: bytes, pos: int) -> int:
    if pos + 2 > len(data):
        raise _Unexpected("truncated")
    return int.from_bytes(data[pos : pos + 2], "big")
