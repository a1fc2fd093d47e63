"""probe(): format and size from the header alone, refusing bombs, truncation and inconsistency."""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import IO

import pytest
from PIL import Image

from imgpipe.domain.errors import CorruptImage, EmptyUpload, ImageTooLarge, UnsupportedImage
from imgpipe.imaging import probe as probe_module
from imgpipe.imaging.probe import inspect, probe, probe_bytes
from imgpipe.imaging.types import ImageFormat, ImageInfo, Limits
from support.corpus import CORPUS, Row, displayed_size_in_note, rows

LIMITS = Limits()
_SWAPS = {"ok-rotate-90", "ok-rotate-270", "ok-transpose", "ok-transverse"}


def _sized_rows() -> list[Row]:
    return [r for r in rows() if r.expected.startswith("ok") and r.width is not None and r.height is not None]


def _manifest_size_as_probed(row: Row) -> tuple[int, int]:
    """The displayed size, from the manifest's size and ``expected`` column.

    The manifest's size comes from whichever library parsed each file: Pillow's stored size
    for JPEG, MPO, PNG, WebP, GIF and BMP (it does not apply EXIF orientation on open),
    Pillow's displayed size for TIFF (its libtiff path applies the Orientation tag),
    libheif's displayed size for HEIF, and libavif's coded size for AVIF.
    """
    assert row.width is not None and row.height is not None
    size = (row.width, row.height)
    if row.base_format in ("TIFF", "HEIF"):
        return size
    if row.base_format == "AVIF":
        shown = displayed_size_in_note(row) if row.expected == "ok-crop" else None
        return shown or (size[::-1] if row.expected in _SWAPS else size)
    return size[::-1] if row.expected in _SWAPS else size


@pytest.mark.parametrize("row", _sized_rows(), ids=lambda r: r.path)
def test_probe_agrees_with_the_manifest_on_format_and_size(row: Row) -> None:
    try:
        with row.file.open("rb") as f:
            info = probe(f, LIMITS)
    except CorruptImage:
        assert row.expected == "ok-or-reject-corrupt"
        return
    expected_format = "JPEG" if row.base_format == "MPO" else row.base_format
    assert info.format.name == expected_format
    width, height = _manifest_size_as_probed(row)
    slack = 2 if row.expected == "ok-crop" else 0  # the note rounds the clean aperture
    assert abs(info.width - width) <= slack and abs(info.height - height) <= slack, (info, (width, height))


@pytest.mark.parametrize("row", [r for r in rows() if r.expected == "reject-bomb"], ids=lambda r: r.path)
def test_every_bomb_in_the_corpus_is_refused_from_its_header(row: Row) -> None:
    with pytest.raises(ImageTooLarge):
        probe_bytes(row.read(), LIMITS)


# --- generated headers ---------------------------------------------------------------------


def _png(width: int, height: int, *chunks: tuple[bytes, bytes]) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4)
    extra = b"".join(chunk(kind, body) for kind, body in chunks)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", 2 + len(body)) + body


def _jpeg(width: int, height: int, *, before: tuple[bytes, ...] = (), after: tuple[bytes, ...] = ()) -> bytes:
    """SOI, the ``before`` segments, SOF0, the ``after`` segments, SOS, EOI."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x00" * 8
    return b"\xff\xd8" + b"".join(before) + _segment(0xC0, sof) + b"".join(after) + sos + b"\xff\xd9"


def _exif(orientation: int, *, order: str = "<", kind: int = 3, prefix: bytes = b"Exif\x00\x00") -> bytes:
    """A TIFF-structured EXIF block whose IFD0 holds Make, Orientation and XResolution."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    value = struct.pack(order + "H", orientation) + b"\x00\x00" if kind == 3 else struct.pack(order + "I", orientation)
    entries = [
        struct.pack(order + "HHI", 0x010F, 2, 4) + b"ACME",
        struct.pack(order + "HHI", 0x0112, kind, 1) + value,
        struct.pack(order + "HHII", 0x011A, 5, 1, 8 + 2 + 3 * 12 + 4),
    ]
    ifd = struct.pack(order + "H", len(entries)) + b"".join(entries) + b"\x00" * 4
    return prefix + magic + struct.pack(order + "I", 8) + ifd + struct.pack(order + "II", 72, 1)


def _webp(width: int, height: int, *, exif: bytes | None = None, exif_flag: bool = True, frames: int = 0) -> bytes:
    """A VP8X WebP: a VP8L still (or ``frames`` animation frames), then the EXIF chunk if given."""
    flags = (0x08 if exif is not None and exif_flag else 0) | (0x02 if frames else 0)
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes((flags, 0, 0, 0))
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    if frames:
        vp8x += b"ANIM" + struct.pack("<I", 6) + b"\x00" * 6
        anmf = b"\x00" * 6 + (0).to_bytes(3, "little") + (0).to_bytes(3, "little") + b"\x00" * 4
        vp8x += (b"ANMF" + struct.pack("<I", len(anmf)) + anmf) * frames
    elif width <= 16_384 and height <= 16_384:  # VP8L cannot say more; the canvas can
        bits = (width - 1) | (height - 1) << 14
        vp8x += b"VP8L" + struct.pack("<I", 6) + b"\x2f" + struct.pack("<I", bits) + b"\x00"
    if exif is not None:
        vp8x += b"EXIF" + struct.pack("<I", len(exif)) + exif + b"\x00" * (len(exif) & 1)
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def _gif(width: int, height: int) -> bytes:
    return (
        b"GIF89a"
        + struct.pack("<HHBBB", width, height, 0, 0, 0)
        + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


def _bmp(width: int, height: int, *, pixels: bool = True) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    size = (24 * abs(width) + 31) // 32 * 4 * abs(height) if pixels and abs(width * height) <= 10**6 else 0
    return b"BM" + struct.pack("<IHHI", 54 + size, 0, 0, 54) + info + b"\x00" * size


def _tiff(width: int, height: int, *extra: tuple[int, int, int, int]) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (277, 3, 1, 1), *extra]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _avif(width: int, height: int, *, codec: bytes = b"av01", mdat: bytes = b"\x00" * 16) -> bytes:
    ftyp = _box(b"ftyp", b"avif\x00\x00\x00\x00avifmif1miaf")
    infe = _box(b"infe", b"\x02\x00\x00\x00" + struct.pack(">HH", 1, 0) + codec + b"\x00")
    ispe = _box(b"ispe", b"\x00\x00\x00\x00" + struct.pack(">II", width, height))
    ipma = _box(b"ipma", b"\x00\x00\x00\x00" + struct.pack(">IHB", 1, 1, 1) + b"\x81")
    meta_body = b"\x00\x00\x00\x00" + b"".join(
        (
            _box(b"hdlr", b"\x00" * 8 + b"pict" + b"\x00" * 13),
            _box(b"pitm", b"\x00\x00\x00\x00" + struct.pack(">H", 1)),
            _box(b"iinf", b"\x00\x00\x00\x00" + struct.pack(">H", 1) + infe),
            _box(b"iprp", _box(b"ipco", ispe) + ipma),
        )
    )
    return ftyp + _box(b"meta", meta_body) + _box(b"mdat", mdat)


GENERATED = {
    "png": _png,
    "jpeg": _jpeg,
    "webp": _webp,
    "gif": _gif,
    "bmp": _bmp,
    "tiff": _tiff,
    "avif": _avif,
}


@pytest.mark.parametrize("make", GENERATED.values(), ids=GENERATED.keys())
def test_a_50000_by_50000_header_is_too_large(make: object) -> None:
    assert callable(make)
    with pytest.raises(ImageTooLarge):
        probe_bytes(make(50_000, 50_000), LIMITS)


@pytest.mark.parametrize("make", GENERATED.values(), ids=GENERATED.keys())
def test_a_small_generated_header_probes_to_its_size(make: object) -> None:
    assert callable(make)
    info = probe_bytes(make(300, 200), LIMITS)
    assert (info.width, info.height) == (300, 200)


def test_a_65535_by_1_panorama_passes_the_default_limit() -> None:
    buf = io.BytesIO()
    Image.new("L", (65_535, 1), 128).save(buf, "PNG")
    assert probe_bytes(buf.getvalue(), LIMITS) == ImageInfo(ImageFormat.PNG, 65_535, 1)


def test_the_pixel_limit_is_the_callers() -> None:
    with pytest.raises(ImageTooLarge):
        probe_bytes(_png(1000, 1000), Limits(max_pixels=999_999))
    assert probe_bytes(_png(1000, 1000), Limits(max_pixels=1_000_000)).pixels == 1_000_000


def test_the_empty_file_is_an_empty_upload() -> None:
    with pytest.raises(EmptyUpload):
        probe_bytes((CORPUS / "hostile/empty/empty.heic").read_bytes(), LIMITS)


def test_a_non_image_is_unsupported() -> None:
    with pytest.raises(UnsupportedImage):
        probe_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", LIMITS)


TRUNCATED = {
    "png-in-ihdr": _png(10, 10)[:20],
    "png-without-iend": _png(10, 10)[:-12],
    "jpeg-before-sof": _jpeg(10, 10)[:8],
    "jpeg-in-app1": b"\xff\xd8\xff\xe1\x10\x00Exif\x00\x00",
    "gif-in-screen": _gif(10, 10)[:9],
    "gif-before-first-frame": _gif(10, 10)[:13],
    "webp-in-vp8x": _webp(10, 10)[:20],
    "bmp-in-info-header": _bmp(10, 10)[:30],
    "bmp-without-pixels": _bmp(10, 10, pixels=False),
    "tiff-in-ifd": _tiff(10, 10)[:14],
    "avif-in-meta": _avif(10, 10)[:60],
    "avif-in-mdat": _avif(10, 10)[:-4],
}


@pytest.mark.parametrize("data", TRUNCATED.values(), ids=TRUNCATED.keys())
def test_a_truncated_header_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptImage):
        probe_bytes(data, LIMITS)


def test_a_png_text_chunk_that_inflates_past_the_cap_is_a_bomb() -> None:
    bomb = b"Comment\x00\x00" + zlib.compress(b"\x00" * (2 << 20), 9)
    with pytest.raises(ImageTooLarge):
        probe_bytes(_png(10, 10, (b"zTXt", bomb)), LIMITS)


def test_a_png_itxt_and_iccp_under_the_cap_are_fine() -> None:
    itxt = b"Comment\x00\x01\x00\x00\x00" + zlib.compress(b"hello " * 1000)
    iccp = b"icc\x00\x00" + zlib.compress(b"\x00" * 4000)
    assert probe_bytes(_png(10, 10, (b"iTXt", itxt), (b"iCCP", iccp)), LIMITS).width == 10


def test_a_gif_frame_far_outside_its_logical_screen_is_a_bomb() -> None:
    frame = b"," + struct.pack("<HHHHB", 60_000, 60_000, 10, 10, 0) + b"\x02\x02D\x01\x00"
    gif = _gif(10, 10)[:-1] + frame + b";"
    with pytest.raises(ImageTooLarge):
        probe_bytes(gif, LIMITS)


def test_a_gif_with_zero_width_is_corrupt() -> None:
    with pytest.raises(CorruptImage):
        probe_bytes(_gif(0, 10), LIMITS)


def test_a_tiff_strip_beyond_the_end_of_the_file_is_corrupt() -> None:
    entries = [(256, 4, 1, 10), (257, 4, 1, 10), (273, 4, 1, 10_000), (279, 4, 1, 100)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    with pytest.raises(CorruptImage):
        probe_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd, LIMITS)


def test_a_bmp_with_a_negative_width_is_corrupt_but_a_negative_height_is_top_down() -> None:
    with pytest.raises(CorruptImage):
        probe_bytes(_bmp(-10, 10), LIMITS)
    assert probe_bytes(_bmp(10, -10), LIMITS).height == 10


def test_a_heif_whose_primary_item_is_neither_hevc_nor_av1_is_unsupported() -> None:
    with pytest.raises(UnsupportedImage):
        probe_bytes(_avif(10, 10, codec=b"jpeg"), LIMITS)


def test_the_probe_routes_an_av1_payload_in_a_heic_branded_file_by_its_codec() -> None:
    header = inspect(io.BytesIO((CORPUS / "formats/avif/hopper.avif").read_bytes()), LIMITS)
    assert header.codec == "av01" and header.avif_brand
    header = inspect(io.BytesIO((CORPUS / "formats/heic/hopper_av1.heif").read_bytes()), LIMITS)
    assert header.codec == "hvc1"  # despite its name, this pillow_heif fixture is HEVC


# --- orientation: the displayed size ---------------------------------------------------


def test_a_jpeg_with_exif_orientation_6_probes_to_its_displayed_landscape_size() -> None:
    path = CORPUS / "exif-orientation/jpeg-recurser/Landscape_6.jpg"
    with Image.open(path) as stored:
        assert stored.size == (1200, 1800)
    with path.open("rb") as f:
        assert probe(f, LIMITS) == ImageInfo(ImageFormat.JPEG, 1800, 1200)
    assert inspect(io.BytesIO(path.read_bytes()), LIMITS).orientation == 6


@pytest.mark.parametrize(
    "path",
    ["exif-orientation/jpeg-recurser/Landscape_0.jpg", "exif-orientation/jpeg-generated/orientation_9_invalid.jpg",
     "hostile/metadata/invalid-exif.jpg", "hostile/metadata/exif-ifd-offset.jpg"],
)  # fmt: skip
def test_orientation_0_9_or_a_broken_exif_block_keeps_the_stored_size(path: str) -> None:
    data = (CORPUS / path).read_bytes()
    with Image.open(io.BytesIO(data)) as stored:
        size = stored.size
    header = inspect(io.BytesIO(data), LIMITS)
    assert header.orientation == 1
    assert (header.info.width, header.info.height) == size


ORIENTED = {
    "jpeg": lambda o: _jpeg(300, 200, before=(_segment(0xE1, _exif(o)),)),
    "jpeg-big-endian": lambda o: _jpeg(300, 200, before=(_segment(0xE1, _exif(o, order=">")),)),
    "jpeg-exif-after-xmp": lambda o: _jpeg(
        300, 200, before=(_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x/>"), _segment(0xE1, _exif(o)))
    ),
    "jpeg-exif-after-sof": lambda o: _jpeg(300, 200, after=(_segment(0xE1, _exif(o)),)),
    "webp": lambda o: _webp(300, 200, exif=_exif(o)),
    "webp-without-exif-prefix": lambda o: _webp(300, 200, exif=_exif(o, prefix=b"")),
    "webp-animated": lambda o: _webp(300, 200, exif=_exif(o), frames=1000),
    "tiff": lambda o: _tiff(300, 200, (274, 3, 1, o)),
    "tiff-long": lambda o: _tiff(300, 200, (274, 4, 1, o)),
    "png-exif": lambda o: _png(300, 200, (b"eXIf", _exif(o, prefix=b""))),
}


@pytest.mark.parametrize("make", ORIENTED.values(), ids=ORIENTED.keys())
@pytest.mark.parametrize("orientation", range(10))
def test_orientations_5_to_8_swap_width_and_height(make: object, orientation: int) -> None:
    assert callable(make)
    header = inspect(io.BytesIO(make(orientation)), LIMITS)
    turned = 5 <= orientation <= 8
    assert header.orientation == (orientation if 1 <= orientation <= 8 else 1)
    assert (header.info.width, header.info.height) == ((200, 300) if turned else (300, 200))


def test_webp_and_tiff_orientations_6_and_8_from_the_corpus_swap() -> None:
    for path, stored in [
        ("exif-orientation/pillow-hopper/hopper_orientation_6.webp", (128, 128)),
        ("exif-orientation/tiff/g4_orientation_6.tif", (88, 590)),
        ("exif-orientation/tiff/g4_orientation_8.tif", (88, 590)),
    ]:
        header = inspect(io.BytesIO((CORPUS / path).read_bytes()), LIMITS)
        assert header.orientation in (6, 8)
        assert (header.info.width, header.info.height) == stored[::-1]


def test_only_the_first_exif_segment_of_a_jpeg_counts() -> None:
    data = _jpeg(300, 200, before=(_segment(0xE1, _exif(1)), _segment(0xE1, _exif(6))))
    assert probe_bytes(data, LIMITS) == ImageInfo(ImageFormat.JPEG, 300, 200)


def test_an_exif_orientation_that_is_not_a_short_is_ignored_as_browsers_do() -> None:
    data = _jpeg(300, 200, before=(_segment(0xE1, _exif(6, kind=4)),))
    assert probe_bytes(data, LIMITS) == ImageInfo(ImageFormat.JPEG, 300, 200)


def test_a_webp_exif_chunk_not_flagged_in_vp8x_is_ignored_as_libwebp_does() -> None:
    assert probe_bytes(_webp(300, 200, exif=_exif(6), exif_flag=False), LIMITS).width == 300


def test_the_pixel_limit_applies_to_the_stored_size_of_a_turned_image() -> None:
    data = _tiff(300, 200, (274, 3, 1, 6))
    assert probe_bytes(data, Limits(max_pixels=60_000)) == ImageInfo(ImageFormat.TIFF, 200, 300)
    with pytest.raises(ImageTooLarge):
        probe_bytes(data, Limits(max_pixels=59_999))


def test_a_tiff_whose_orientation_is_out_of_range_keeps_its_stored_size() -> None:
    for value in (0, 9, 65_535):
        assert probe_bytes(_tiff(300, 200, (274, 3, 1, value)), LIMITS).width == 300


def test_a_classic_tiff_with_a_long8_orientation_or_size_is_not_a_crash() -> None:
    assert probe_bytes(_tiff(300, 200, (274, 16, 1, 6)), LIMITS).width == 300
    entries = [(256, 16, 1, 300), (257, 4, 1, 200)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    with pytest.raises(CorruptImage):  # no usable width
        probe_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd, LIMITS)


def _exif_span(data: bytes) -> tuple[int, int]:
    """Where the EXIF block (after any Exif\\0\\0 prefix) lies in a generated file."""
    start = max(data.find(b"II*\x00", 4), data.find(b"MM\x00*", 4))
    return start, start + len(_exif(1, prefix=b""))


@pytest.mark.parametrize("name", ["jpeg", "jpeg-big-endian", "jpeg-exif-after-sof", "webp", "png-exif"])
def test_damaged_exif_never_changes_the_outcome_beyond_the_orientation(name: str) -> None:
    """Random bytes over the EXIF block alone: the probe still succeeds, upright or as stored."""
    original = ORIENTED[name](6)
    start, end = _exif_span(original)
    rng = random.Random(name)
    for _ in range(400):
        data = bytearray(original)
        for _flip in range(rng.randint(1, 6)):
            at = rng.randrange(start, end)
            data[at] = rng.choice((0, 0xFF, rng.randrange(256)))
        if rng.random() < 0.3:  # an absurd IFD offset or entry count
            at = rng.randrange(start + 4, end - 4)
            data[at : at + 4] = rng.choice((b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\xff\xff"))
        info = probe_bytes(bytes(data), LIMITS)
        assert (info.width, info.height) in ((300, 200), (200, 300))


@pytest.mark.parametrize(
    "path",
    ["exif-orientation/jpeg-recurser/Landscape_6.jpg", "exif-orientation/pillow-hopper/hopper_orientation_6.webp",
     "exif-orientation/tiff/g4_orientation_6.tif", "exif-orientation/png/exif_imagemagick_orientation.png",
     "hostile/metadata/invalid-exif.jpg"],
)  # fmt: skip
def test_damaged_headers_around_exif_end_in_a_domain_error_at_worst(path: str) -> None:
    original = (CORPUS / path).read_bytes()
    rng = random.Random(path)
    head = min(len(original), 4096)
    for _ in range(300):
        data = bytearray(original)
        for _flip in range(rng.randint(1, 8)):
            data[rng.randrange(head)] = rng.randrange(256)
        cut = len(data) if rng.random() < 0.7 else rng.randrange(len(data))
        try:
            probe_bytes(bytes(data[:cut]), LIMITS)
        except (EmptyUpload, UnsupportedImage, CorruptImage, ImageTooLarge):
            pass


def test_probe_takes_the_spooled_file_the_api_hands_it() -> None:
    with tempfile.SpooledTemporaryFile(max_size=1024) as f:
        f.write(_jpeg(300, 200, before=(_segment(0xE1, _exif(8)),)))
        f.write(b"\x00" * 2048)  # rolled over to a real file
        f.seek(7)
        assert probe(f, LIMITS) == ImageInfo(ImageFormat.JPEG, 200, 300)
        assert f.tell() == 7


class _Counting(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0
        self.reads = 0

    def read(self, n: int | None = -1, /) -> bytes:
        data = super().read(n)
        self.bytes_read += len(data)
        self.reads += 1
        return data


@pytest.mark.parametrize(
    "path",
    ["formats/jpeg/xmp_test_adobergb.jpg", "hostile/metadata/icc_profile_big.jpg", "formats/webp/iss634_animated.webp",
     "formats/avif/linku_fox.profile0.10bpc.yuv420.avif", "formats/tiff/hopper.tif",
     "exif-orientation/jpeg-recurser/Landscape_6.jpg"],
)  # fmt: skip
def test_probe_reads_only_the_header_of_a_large_file(path: str) -> None:
    data = (CORPUS / path).read_bytes()
    f = _Counting(data)
    probe(f, LIMITS)
    assert f.bytes_read < min(len(data) // 4, 64 * 1024)


def test_probe_restores_the_file_position() -> None:
    f: IO[bytes] = io.BytesIO(_png(10, 10))
    f.seek(5)
    probe(f, LIMITS)
    assert f.tell() == 5


def test_the_probe_module_loads_no_native_image_library() -> None:
    code = (
        "import sys, imgpipe.imaging.probe as p, imgpipe.imaging.types as t;"
        "p.probe_bytes(open(sys.argv[1], 'rb').read(), t.Limits());"
        "bad = [m for m in ('pyvips', 'PIL', 'pillow_heif') if m in sys.modules];"
        "sys.exit(str(bad) if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(CORPUS / "formats/jpeg/flower2.jpg")], check=False)
    assert done.returncode == 0


def test_a_gif_split_into_millions_of_tiny_blocks_is_refused_rather_than_walked() -> None:
    frame = b"," + struct.pack("<HHHH", 0, 0, 4, 4) + b"\x00\x02" + b"\x01\x00" * 2000 + b"\x00"
    data = b"GIF89a" + struct.pack("<HH", 4, 4) + b"\x00\x00\x00" + frame * 600 + b";"
    with pytest.raises(ImageTooLarge, match="data blocks"):
        probe_bytes(data, Limits())


def _outcome(f: IO[bytes]) -> object:
    try:
        return inspect(f, LIMITS)
    except (EmptyUpload, UnsupportedImage, CorruptImage, ImageTooLarge) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("row", rows(), ids=lambda r: r.path)
def test_a_file_on_disk_mapped_probes_as_the_same_bytes_read_from_memory(row: Row) -> None:
    with row.file.open("rb") as on_disk:
        mapped = _outcome(on_disk)
    assert mapped == _outcome(io.BytesIO(row.read()))


class _CountingFile(io.BufferedReader):
    reads = 0

    def read(self, n: int | None = -1, /) -> bytes:
        self.reads += 1
        return super().read(n)


def test_a_png_on_disk_is_walked_without_reading_the_file_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = Image.frombytes("RGB", (512, 512), random.Random(3).randbytes(512 * 512 * 3))
    path = tmp_path / "many-chunks.png"
    pixels.save(path, "PNG", compress_level=0)
    chunks = _png_chunk_count(path.read_bytes())
    assert chunks > 8  # Pillow writes its image data in many IDAT chunks
    with _CountingFile(io.FileIO(path)) as f:
        assert probe(f, LIMITS) == ImageInfo(ImageFormat.PNG, 512, 512)
        assert f.reads == 1  # the sniff's head; the chunk walk goes through the mapping
    with path.open("rb") as plain:
        read_through = _Counting(plain.read())
    probe(read_through, LIMITS)
    assert read_through.reads > chunks  # read through a file object: a read or two per chunk
    monkeypatch.setattr(probe_module, "_MAP_AT_MOST", path.stat().st_size - 1)
    with _CountingFile(io.FileIO(path)) as big:
        assert probe(big, LIMITS) == ImageInfo(ImageFormat.PNG, 512, 512)
        assert big.reads > chunks  # past the size it maps, a file is read as before


def _png_chunk_count(data: bytes) -> int:
    count, pos = 0, 8
    while pos < len(data):
        count += 1
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    return count


def test_an_empty_file_on_disk_is_an_empty_upload(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with empty.open("rb") as f, pytest.raises(EmptyUpload):
        probe(f, LIMITS)
