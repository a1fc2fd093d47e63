"""PNG data inflated by ISA-L, unfiltered by libvips: the thumbnails and errors of libvips alone, one leniency aside."""

from __future__ import annotations

import io
import random
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import pyvips
from isal import isal_zlib
from PIL import Image

from imgpipe.domain.errors import CorruptImage
from imgpipe.imaging import _png_idat
from imgpipe.imaging.kernel import render
from imgpipe.imaging.types import Limits, Rendered, VariantSpec
from support.corpus import CORPUS, Row, rows

SPEC = VariantSpec()
PHOTO = CORPUS / "exif-orientation/jpeg-recurser/Landscape_1.jpg"
PNG_ROWS = [row for row in rows() if row.base_format == "PNG"]

Outcome = tuple[str, bytes]


@pytest.fixture(autouse=True)
def _configured(kernel: None) -> None:
    """Every test here runs in a configured kernel."""


@pytest.fixture
def outcome(monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes, bool], Outcome]:
    """render()'s result or error class, with or without the rewrite, at any file size."""

    def rendered(data: bytes, rewrite: bool) -> Outcome:
        with monkeypatch.context() as m:
            m.setattr(_png_idat, "MIN_FILE", 0)
            if not rewrite:
                m.setattr(_png_idat, "with_stored_idat", lambda data: None)
            try:
                result: Rendered = render(data, SPEC, Limits())
            except Exception as exc:  # the class is what is compared
                return type(exc).__name__, b""
            return result.content_type, result.data

    return rendered


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk."""
    out, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png(chunks: list[tuple[bytes, bytes]], *, bad_crc: bytes = b"") -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, payload in chunks:
        crc = zlib.crc32(kind + payload) ^ (1 if kind == bad_crc else 0)
        out.append(len(payload).to_bytes(4, "big") + kind + payload + crc.to_bytes(4, "big"))
    return b"".join(out)


def _photo_png(mode: str = "RGB", **params: object) -> bytes:
    """A real photograph as PNG, big enough (> MIN_FILE) to take the rewrite."""
    with Image.open(PHOTO) as photo:
        image = photo.convert("RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    elif mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    data = out.getvalue()
    assert len(data) >= _png_idat.MIN_FILE
    return data


def _split_idat(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes, list[tuple[bytes, bytes]]]:
    """(chunks before the image data, the whole zlib stream, chunks after)."""
    chunks = _chunks(data)
    first = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    last = max(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    stream = b"".join(payload for _, payload in chunks[first : last + 1])
    return chunks[:first], stream, chunks[last + 1 :]


@pytest.mark.parametrize("row", PNG_ROWS, ids=lambda r: r.path)
def test_every_corpus_png_ends_the_same_with_and_without_the_rewrite(
    row: Row, outcome: Callable[[bytes, bool], Outcome]
) -> None:
    data = row.read()
    assert outcome(data, True) == outcome(data, False)


def test_the_rewrite_takes_every_well_formed_corpus_png(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above compares the two routes only if the rewrite really runs on the corpus."""
    monkeypatch.setattr(_png_idat, "MIN_FILE", 0)
    ok = [row for row in PNG_ROWS if row.expected.startswith("ok")]
    taken = [row.path for row in ok if _png_idat.with_stored_idat(row.read()) is not None]
    assert len(ok) > 100 and taken == [row.path for row in ok]


@pytest.mark.parametrize(
    ("mode", "params"),
    [("RGB", {}), ("RGBA", {}), ("L", {}), ("P", {}), ("I;16", {}), ("RGB", {"optimize": True})],
    ids=["rgb", "rgba", "grey", "palette", "grey16", "optimized"],
)
def test_photo_pngs_take_the_rewrite_and_render_the_same_thumbnail(
    mode: str, params: dict[str, object], outcome: Callable[[bytes, bool], Outcome]
) -> None:
    data = _photo_png(mode, **params)
    rewritten = _png_idat.with_stored_idat(data)
    assert rewritten is not None and len(rewritten) > 1024 * 1024  # stored: no longer compressed
    with_rewrite = outcome(data, True)
    assert with_rewrite[0] in ("image/jpeg", "image/webp") and with_rewrite == outcome(data, False)


def test_an_interlaced_photo_renders_the_same(outcome: Callable[[bytes, bool], Outcome]) -> None:
    with Image.open(PHOTO) as photo:
        image = photo.convert("RGB").resize((1024, 1024))
    interlaced = _adam7_png(image)
    assert _png_idat.with_stored_idat(interlaced) is not None
    assert outcome(interlaced, True) == outcome(interlaced, False)


def _adam7_png(image: Image.Image) -> bytes:
    """Pillow writes no Adam7 PNGs; libvips does."""
    vips = pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, 3, "uchar")
    return bytes(vips.pngsave_buffer(interlace=True))


@pytest.mark.parametrize("row", [r for r in PNG_ROWS if r.expected.startswith("ok")], ids=lambda r: r.path)
def test_the_size_read_from_ihdr_is_what_the_image_data_inflates_to(row: Row) -> None:
    """Every depth, colour type and Adam7 layout of the corpus (PngSuite holds them all)."""
    data = row.read()
    assert _png_idat.filtered_size(data[16:29]) == len(zlib.decompress(_split_idat(data)[1]))


def test_the_stored_file_is_a_valid_png_with_the_same_rows() -> None:
    data = _photo_png("RGBA")
    rewritten = _png_idat.with_stored_idat(data)
    assert rewritten is not None
    before, stream, after = _split_idat(data)
    new_before, new_stream, new_after = _split_idat(rewritten)
    assert (new_before, new_after) == (before, after)
    assert zlib.decompress(new_stream) == zlib.decompress(stream)  # checks the Adler-32 too
    idats = [payload for kind, payload in _chunks(rewritten) if kind == b"IDAT"]
    assert idats == [new_stream]
    stored_crc = int.from_bytes(rewritten[rewritten.index(b"IDAT") + 4 + len(new_stream) :][:4], "big")
    assert stored_crc == zlib.crc32(b"IDAT" + new_stream)  # Pillow skips IDAT CRCs: checked here


def test_empty_idats_and_a_checksum_split_across_chunks_still_take_the_rewrite(
    outcome: Callable[[bytes, bool], Outcome],
) -> None:
    before, stream, after = _split_idat(_photo_png())
    split = _png([*before, (b"IDAT", b""), (b"IDAT", stream[:-2]), (b"IDAT", b""), (b"IDAT", stream[-2:]), *after])
    assert _png_idat.with_stored_idat(split) is not None
    assert outcome(split, True) == outcome(split, False)


def _with_zlib_header(stream: bytes, cmf: int, flg_bits: int) -> bytes:
    """``stream``'s deflate data behind another zlib header (FCHECK made valid)."""
    flg = flg_bits & 0xE0
    flg |= 31 - ((cmf << 8) | flg) % 31 if ((cmf << 8) | flg) % 31 else 0
    return bytes((cmf, flg)) + stream[2:]


def test_unusual_files_are_left_to_libvips() -> None:
    data = _photo_png()
    before, stream, after = _split_idat(data)
    half = len(stream) // 2
    rows = zlib.decompress(stream)
    cases = {
        "a bad IDAT CRC": _png([*before, (b"IDAT", stream), *after], bad_crc=b"IDAT"),
        "IDATs split by another chunk": _png(
            [*before, (b"IDAT", stream[:half]), (b"tEXt", b"a\x00b"), (b"IDAT", stream[half:]), *after]
        ),
        "bytes after the stream": _png([*before, (b"IDAT", stream + b"junk"), *after]),
        "a truncated stream": _png([*before, (b"IDAT", stream[:half]), *after]),
        "a damaged stream": _png([*before, (b"IDAT", stream[:half] + bytes(64) + stream[half + 64 :]), *after]),
        "a wrong Adler-32": _png([*before, (b"IDAT", stream[:-1] + bytes([stream[-1] ^ 1])), *after]),
        "too few rows": _png([*before, (b"IDAT", zlib.compress(rows[: len(rows) // 3])), *after]),
        "a row too many": _png([*before, (b"IDAT", zlib.compress(rows + rows[: len(rows) // 1024])), *after]),
        "a 16 KiB window declared": _png([*before, (b"IDAT", _with_zlib_header(stream, 0x68, 0)), *after]),
        "a preset dictionary": _png([*before, (b"IDAT", _with_zlib_header(stream, 0x78, 0x20)), *after]),
        "no IEND": _png([*before, (b"IDAT", stream)]),
        "tens of thousands of tiny IDATs": _png(
            [*before, *((b"IDAT", stream[i : i + 8]) for i in range(0, len(stream), 8)), *after]
        ),
        "a cut-off chunk": data[: len(data) // 2],
    }
    assert _png_idat.with_stored_idat(data) is not None  # the intact file is rewritten
    left = {name: _png_idat.with_stored_idat(case) for name, case in cases.items()}
    assert left == dict.fromkeys(cases)


def test_image_data_over_the_cap_stays_compressed() -> None:
    data = _photo_png()
    inflated = len(zlib.decompress(_split_idat(data)[1]))
    assert _png_idat.with_stored_idat(data, cap=inflated) is not None
    assert _png_idat.with_stored_idat(data, cap=inflated - 1) is None


@pytest.mark.parametrize("expected", ["too few rows", "a 16 KiB window"])
def test_what_is_left_to_libvips_ends_as_libvips_decides(
    expected: str, outcome: Callable[[bytes, bool], Outcome]
) -> None:
    """libvips refuses a stream short of rows, and a match further back than the declared window."""
    before, stream, after = _split_idat(_photo_png())
    rows = zlib.decompress(stream)
    if expected == "too few rows":
        bad = zlib.compress(rows[: len(rows) // 3])
    else:
        bad = _with_zlib_header(zlib.compress(rows, 9), 0x18, 0)  # a 512-byte window, 32 KiB matches
    png = _png([*before, (b"IDAT", bad), *after])
    assert _png_idat.with_stored_idat(png) is None
    assert outcome(png, True) == (CorruptImage.__name__, b"")


def test_isal_never_inflates_different_data_than_zlib() -> None:
    """Damaged streams, one to three bits flipped: wherever ISA-L ends a stream cleanly, zlib gives the same
    bytes, or refuses a Huffman table as invalid (the one leniency the module docstring names)."""
    rng = random.Random(7)
    rows = zlib.decompress(_split_idat(_photo_png())[1])[:200_000]
    streams = [zlib.compress(rows, level) for level in (1, 6, 9)]
    lenient = 0
    for stream in streams:
        for _ in range(1500):
            damaged = bytearray(stream)
            for _ in range(rng.randint(1, 3)):
                damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            isal_out = _inflated(isal_zlib.decompressobj(), bytes(damaged))
            if isal_out is None:
                continue
            try:
                assert _inflated(zlib.decompressobj(), bytes(damaged)) == isal_out
            except zlib.error as exc:
                assert "invalid" in str(exc) and "set" in str(exc), exc  # e.g. "invalid distances set"
                assert isal_out == rows
                lenient += 1
    assert lenient < 50  # rare: a flip that leaves the data intact but the table invalid


def _inflated(inflater: Any, stream: bytes) -> bytes | None:
    """The whole stream's data, or None unless it ends exactly at its checked Adler-32."""
    try:
        out = inflater.decompress(stream)
    except zlib.error:
        raise
    except Exception:  # ISA-L's own error class
        return None
    return out if inflater.eof and not inflater.unused_data else None
