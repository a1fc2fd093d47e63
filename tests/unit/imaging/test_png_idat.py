"""PNG image data inflated by ISA-L, then unfiltered by libvips: the same thumbnails and errors as libvips alone."""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import pytest
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
    interlaced = pyvips_png(image, interlace=True)
    assert _png_idat.with_stored_idat(interlaced) is not None
    assert outcome(interlaced, True) == outcome(interlaced, False)


def pyvips_png(image: Image.Image, **params: object) -> bytes:
    """Pillow writes no Adam7 PNGs; libvips does."""
    import pyvips

    vips = pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, 3, "uchar")
    return bytes(vips.pngsave_buffer(**params))


def test_the_stored_file_is_a_valid_png_with_the_same_rows() -> None:
    data = _photo_png("RGBA")
    rewritten = _png_idat.with_stored_idat(data)
    assert rewritten is not None
    before, stream, after = _split_idat(data)
    new_before, new_stream, new_after = _split_idat(bytes(rewritten))
    assert (new_before, new_after) == (before, after)
    assert zlib.decompress(new_stream) == zlib.decompress(stream)  # checks the Adler-32 too
    assert [kind for kind, _ in _chunks(bytes(rewritten))].count(b"IDAT") == 1
    with Image.open(io.BytesIO(bytes(rewritten))) as again, Image.open(io.BytesIO(data)) as original:
        assert again.tobytes() == original.tobytes()  # Pillow checks every chunk's CRC


def test_unusual_files_are_left_to_libvips() -> None:
    data = _photo_png()
    before, stream, after = _split_idat(data)
    half = len(stream) // 2
    cases = {
        "a bad IDAT CRC": _png([*before, (b"IDAT", stream), *after], bad_crc=b"IDAT"),
        "IDATs split by another chunk": _png(
            [*before, (b"IDAT", stream[:half]), (b"tEXt", b"a\x00b"), (b"IDAT", stream[half:]), *after]
        ),
        "bytes after the stream": _png([*before, (b"IDAT", stream + b"junk"), *after]),
        "a truncated stream": _png([*before, (b"IDAT", stream[:half]), *after]),
        "a damaged stream": _png([*before, (b"IDAT", stream[:half] + bytes(64) + stream[half + 64 :]), *after]),
        "a wrong Adler-32": _png([*before, (b"IDAT", stream[:-1] + bytes([stream[-1] ^ 1])), *after]),
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


def test_too_few_rows_in_a_valid_stream_is_still_corrupt(outcome: Callable[[bytes, bool], Outcome]) -> None:
    """The rewrite does not repair: rows missing from the inflated data stay missing."""
    data = _photo_png()
    before, stream, after = _split_idat(data)
    short = _png([*before, (b"IDAT", zlib.compress(zlib.decompress(stream)[: len(stream) // 3])), *after])
    assert _png_idat.with_stored_idat(short) is not None
    assert outcome(short, True) == outcome(short, False) == (CorruptImage.__name__, b"")
