"""HEIF/AVIF header probe: a bounded ISOBMFF box walk to the primary item's codec, size and transforms."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from fractions import Fraction

from imgpipe.domain.errors import CorruptImage, UnsupportedImage
from imgpipe.imaging._header import Crop, Header, Mirror, Rotate, Transform, checked_info
from imgpipe.imaging._source import Source
from imgpipe.imaging.types import ImageFormat, ImageInfo, Limits

__all__ = ["probe_isobmff"]

_MAX_TOP_BOXES = 1000
_MAX_CHILDREN = 10_000  # boxes inside one parent; also bounds items and associations
_META_CAP = 8 * 1024 * 1024  # iPhone meta boxes (hundreds of grid tiles, an ICC) are tens of KiB
_MOOV_CAP = 8 * 1024 * 1024
_CODECS = frozenset({b"hvc1", b"av01"})
_DERIVED = frozenset({b"grid", b"iovl", b"iden"})


def probe_isobmff(src: Source, fmt: ImageFormat, limits: Limits) -> Header:
    brands, meta, moov = _top_level(src)
    avif_brand = bool(brands & {b"avif", b"avis"})
    if meta is None:
        if moov is None:
            raise CorruptImage("The HEIF/AVIF file has neither an image (meta) nor a sequence (moov).")
        width, height = _track_size(moov)
        track_codec = "av01" if avif_brand else "hvc1"
        return Header(checked_info(fmt, width, height, limits), codec=track_codec, avif_brand=avif_brand)
    boxes = dict(_children_first(meta, 4, len(meta)))
    if b"pitm" not in boxes or b"iinf" not in boxes or b"iprp" not in boxes:
        raise CorruptImage("The HEIF/AVIF meta box lacks its primary item, item list or properties.")
    primary = _pitm(meta, *boxes[b"pitm"])
    types = _item_types(meta, *boxes[b"iinf"])
    refs = _dimg_refs(meta, *boxes[b"iref"]) if b"iref" in boxes else {}
    props = _primary_properties(meta, *boxes[b"iprp"], primary)
    codec = types.get(primary, b"")
    parts = refs.get(primary, [])
    if codec in _DERIVED and parts:
        codec = types.get(parts[0], b"")
    if codec not in _CODECS:
        raise UnsupportedImage("Only HEVC (HEIC) and AV1 (AVIF) coded HEIF images are supported.")
    ispe = next((body for kind, body in props if kind == b"ispe"), None)
    if ispe is None or len(ispe) < 12:
        raise CorruptImage("The HEIF/AVIF primary image does not declare its size (ispe).")
    # The pixel limit applies to the coded size (ispe): it is what the decoder allocates.
    # The size reported is the displayed one, after clap and an irot of 90/270 degrees,
    # as libheif reports it. EXIF orientation in a HEIF is ignored, as libheif ignores it.
    width, height = struct.unpack_from(">II", ispe, 4)
    checked_info(fmt, width, height, limits)
    if b"iloc" in boxes:
        _check_extents(src, meta, *boxes[b"iloc"], {primary, *parts})
    transforms = _transforms(props, width, height)
    for step in transforms:
        if isinstance(step, Crop):
            width, height = step.width, step.height
        elif isinstance(step, Rotate) and step.quarter_turns % 2:
            width, height = height, width
    info = ImageInfo(fmt, width, height)
    return Header(info, codec=codec.decode(), transforms=transforms, avif_brand=avif_brand)


def _top_level(src: Source) -> tuple[set[bytes], bytes | None, bytes | None]:
    brands: set[bytes] = set()
    meta: bytes | None = None
    moov: bytes | None = None
    pos = 0
    for _ in range(_MAX_TOP_BOXES):
        if pos >= src.size:
            break
        kind, body, end = _box_header(src, pos)
        if kind == b"ftyp":
            raw = src.read(body, min(end - body, 4096), "ftyp box")
            brands = {raw[:4]} | {raw[i : i + 4] for i in range(8, len(raw) - 3, 4)}  # skip minor version
        elif kind == b"meta" and meta is None:
            meta = _load(src, body, end, _META_CAP, "meta")
        elif kind == b"moov" and moov is None:
            moov = _load(src, body, end, _MOOV_CAP, "moov")
        pos = end
    return brands, meta, moov


def _box_header(src: Source, pos: int) -> tuple[bytes, int, int]:
    head = src.read(pos, 8, "box header")
    size, kind = int.from_bytes(head[:4], "big"), head[4:]
    body = pos + 8
    if size == 1:
        size, body = int.from_bytes(src.read(pos + 8, 8, "box size"), "big"), pos + 16
    elif size == 0:
        size = src.size - pos
    if size < body - pos or pos + size > src.size:
        raise CorruptImage(f"The {kind.decode('latin-1')!r} box runs past the end of the file.")
    return kind, body, pos + size


def _load(src: Source, body: int, end: int, cap: int, what: str) -> bytes:
    if end - body > cap:
        raise CorruptImage(f"The {what} box is implausibly large.")
    return src.read(body, end - body, f"{what} box")


def _children(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, end) of each box in buf[start:end]; CorruptImage if one overflows its parent."""
    pos = start
    for _ in range(_MAX_CHILDREN):
        if pos + 8 > end:
            return
        size, kind = struct.unpack_from(">I4s", buf, pos)
        body = pos + 8
        if size == 1 and pos + 16 <= end:
            size, body = struct.unpack_from(">Q", buf, pos + 8)[0], pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            raise CorruptImage("A HEIF/AVIF box overflows its parent.")
        yield kind, body, pos + size
        pos += size
    raise CorruptImage("A HEIF/AVIF box has too many children.")


def _children_first(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, tuple[int, int]]]:
    seen: set[bytes] = set()
    for kind, body, box_end in _children(buf, start, end):
        if kind not in seen:
            seen.add(kind)
            yield kind, (body, box_end)


def _pitm(buf: bytes, body: int, end: int) -> int:
    version = _need(buf, body, end, 4)[0]
    return int.from_bytes(_need(buf, body + 4, end, 4 if version else 2), "big")


def _item_types(buf: bytes, body: int, end: int) -> dict[int, bytes]:
    version = _need(buf, body, end, 4)[0]
    start = body + (8 if version else 6)
    types: dict[int, bytes] = {}
    for kind, infe, infe_end in _children(buf, start, end):
        if kind != b"infe" or infe + 4 > infe_end or buf[infe] < 2:
            continue  # infe versions 0 and 1 carry no item type
        id_size = 4 if buf[infe] >= 3 else 2
        raw = _need(buf, infe + 4, infe_end, id_size + 6)
        types[int.from_bytes(raw[:id_size], "big")] = raw[id_size + 2 : id_size + 6]
    return types


def _dimg_refs(buf: bytes, body: int, end: int) -> dict[int, list[int]]:
    id_size = 4 if _need(buf, body, end, 4)[0] else 2
    refs: dict[int, list[int]] = {}
    for kind, ref, ref_end in _children(buf, body + 4, end):
        if kind != b"dimg":
            continue
        raw = _need(buf, ref, ref_end, id_size + 2)
        source, count = int.from_bytes(raw[:id_size], "big"), int.from_bytes(raw[id_size:], "big")
        ids = _need(buf, ref + id_size + 2, ref_end, count * id_size)
        refs[source] = [int.from_bytes(ids[i : i + id_size], "big") for i in range(0, len(ids), id_size)]
    return refs


def _primary_properties(buf: bytes, body: int, end: int, primary: int) -> list[tuple[bytes, bytes]]:
    """(type, body) of the primary item's properties, in association order."""
    ipco: list[tuple[bytes, bytes]] = []
    indices: list[int] = []
    for kind, child, child_end in _children(buf, body, end):
        if kind == b"ipco":
            ipco = [(k, buf[b:e]) for k, b, e in _children(buf, child, child_end)]
        elif kind == b"ipma":
            indices += _associations(buf, child, child_end, primary)
    return [ipco[i - 1] for i in indices if 0 < i <= len(ipco)]


def _associations(buf: bytes, body: int, end: int, primary: int) -> list[int]:
    head = _need(buf, body, end, 8)
    version, flags, count = head[0], int.from_bytes(head[1:4], "big"), int.from_bytes(head[4:8], "big")
    id_size, index_size = (4 if version else 2), (2 if flags & 1 else 1)
    pos = body + 8
    for _ in range(min(count, _MAX_CHILDREN)):
        raw = _need(buf, pos, end, id_size + 1)
        item, n = int.from_bytes(raw[:id_size], "big"), raw[id_size]
        entries = _need(buf, pos + id_size + 1, end, n * index_size)
        pos += id_size + 1 + n * index_size
        if item == primary:
            mask = 0x7FFF if index_size == 2 else 0x7F
            starts = range(0, len(entries), index_size)
            return [int.from_bytes(entries[i : i + index_size], "big") & mask for i in starts]
    return []


def _transforms(props: list[tuple[bytes, bytes]], width: int, height: int) -> tuple[Transform, ...]:
    """clap/irot/imir in association order (MIAF requires clap, irot, imir), sizes tracked as they apply."""
    out: list[Transform] = []
    for kind, body in props:
        if kind == b"irot" and body:
            turns = body[0] & 3
            out.append(Rotate(turns))
            if turns % 2:
                width, height = height, width
        elif kind == b"imir" and body:
            out.append(Mirror(body[0] & 1))
        elif kind == b"clap" and len(body) >= 32:
            crop = _clean_aperture(struct.unpack(">IIIIiIiI", body[:32]), width, height)
            if crop is not None:
                out.append(crop)
                width, height = crop.width, crop.height
    return tuple(out)


def _clean_aperture(v: tuple[int, ...], width: int, height: int) -> Crop | None:
    """ISO/IEC 14496-12 clean aperture, centred on the image centre plus an offset; None if unusable."""
    if 0 in (v[1], v[3], v[5], v[7]):
        return None
    clean_w, clean_h = Fraction(v[0], v[1]), Fraction(v[2], v[3])
    left = Fraction(v[4], v[5]) + (width - clean_w) / 2
    top = Fraction(v[6], v[7]) + (height - clean_h) / 2
    crop = Crop(round(left), round(top), round(clean_w), round(clean_h))
    inside = crop.left >= 0 and crop.top >= 0 and crop.left + crop.width <= width and crop.top + crop.height <= height
    return crop if inside and crop.width > 0 and crop.height > 0 else None


def _check_extents(src: Source, buf: bytes, body: int, end: int, items: set[int]) -> None:
    """Every extent of the primary item (and its grid tiles) must lie inside the file: catches half uploads."""
    head = _need(buf, body, end, 8)
    version = head[0]
    offset_size, length_size, base_size = head[4] >> 4, head[4] & 15, head[5] >> 4
    index_size = head[5] & 15 if version in (1, 2) else 0
    if not {offset_size, length_size, base_size, index_size} <= {0, 4, 8}:
        raise CorruptImage("The HEIF/AVIF item locations use invalid field sizes.")
    count_size = 4 if version == 2 else 2
    count = int.from_bytes(_need(buf, body + 6, end, count_size), "big")
    pos = body + 6 + count_size
    id_size = 4 if version == 2 else 2
    for _ in range(min(count, _MAX_CHILDREN)):
        raw = _need(buf, pos, end, id_size + (2 if version else 0) + 2 + base_size + 2)
        item = int.from_bytes(raw[:id_size], "big")
        at = id_size
        method = (int.from_bytes(raw[at : at + 2], "big") & 15) if version else 0
        at += 2 if version else 0
        at += 2  # data_reference_index
        base = int.from_bytes(raw[at : at + base_size], "big")
        extents = int.from_bytes(raw[at + base_size : at + base_size + 2], "big")
        pos += len(raw)
        extent_size = index_size + offset_size + length_size
        table = _need(buf, pos, end, extents * extent_size)
        pos += len(table)
        if item not in items or method != 0 or not extent_size:
            continue  # other items, or data inside the meta box (idat) that is already in memory
        for e in range(0, len(table), extent_size):
            off = int.from_bytes(table[e + index_size : e + index_size + offset_size], "big")
            length = int.from_bytes(table[e + index_size + offset_size : e + extent_size], "big")
            if base + off + length > src.size:
                raise CorruptImage("The HEIF/AVIF image data is truncated.")


def _track_size(moov: bytes) -> tuple[int, int]:
    """Width and height from the first track header of an image sequence without a meta box."""
    for kind, trak, trak_end in _children(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        for child, tkhd, tkhd_end in _children(moov, trak, trak_end):
            if child == b"tkhd":
                at = tkhd + (88 if moov[tkhd] == 1 else 76)
                raw = _need(moov, at, tkhd_end, 8)
                return int.from_bytes(raw[:4], "big") >> 16, int.from_bytes(raw[4:], "big") >> 16
    raise CorruptImage("The image sequence has no track header.")


def _need(buf: bytes, at: int, end: int, n: int) -> bytes:
    if n < 0 or at + n > end:
        raise CorruptImage("A HEIF/AVIF box is shorter than its fields.")
    return buf[at : at + n]
