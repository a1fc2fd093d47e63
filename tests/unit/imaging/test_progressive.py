"""Progressive JPEGs decoded at 1/8 scale without their AC scans: the same pixels, or the file left as it is."""

from __future__ import annotations

import io
import random
from functools import cache

import pytest
from PIL import Image

from imgpipe.imaging import _pil, _progressive
from imgpipe.imaging._progressive import dc_only
from imgpipe.imaging.kernel import render
from imgpipe.imaging.types import Limits, VariantSpec
from support.corpus import CORPUS

SPEC = VariantSpec()


@pytest.fixture(autouse=True)
def _configured(kernel: None) -> None:
    """Every test here runs in a configured kernel."""


@cache
def _photo(width: int, height: int) -> Image.Image:
    """A real photograph (the corpus's flower) at the size asked for."""
    with Image.open(CORPUS / "formats/jpeg/flower2.jpg") as source:
        return source.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)


def _progressive_jpeg(width: int = 2400, height: int = 1800, mode: str = "RGB", **params: object) -> bytes:
    out = io.BytesIO()
    _photo(width, height).convert(mode).save(out, "JPEG", progressive=True, quality=90, **params)
    return out.getvalue()


def _eighth(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.draft(image.mode, (image.width // 8, image.height // 8))
    image.load()
    return image


def _assert_same_eighth_scale_decode(data: bytes) -> bytes:
    lean = dc_only(data)
    assert lean is not None
    whole, dropped = _eighth(data), _eighth(lean)
    assert (dropped.mode, dropped.size) == (whole.mode, whole.size)
    assert dropped.tobytes() == whole.tobytes()
    return lean


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


@pytest.mark.parametrize(
    "params",
    [
        {"subsampling": 2},  # 4:2:0: the chroma is decoded at 2x2 from its low AC, those scans are kept
        {"subsampling": 1},  # 4:2:2
        {"subsampling": 0},  # 4:4:4: every component at 1x1, every AC scan dropped
        {"mode": "L"},
        {"width": 2111, "height": 1589},  # neither a multiple of 8 nor of 16
        {"restart_marker_blocks": 7},  # restart markers in every scan, the appended ones have none
        {"optimize": True},
    ],
    ids=["420", "422", "444", "grey", "odd-size", "restarts", "optimized"],
)
def test_the_eighth_scale_decode_is_the_same_without_the_ac_scans(params: dict[str, object]) -> None:
    data = _progressive_jpeg(**params)  # type: ignore[arg-type]
    lean = _assert_same_eighth_scale_decode(data)
    assert len(lean) < len(data) * 0.6


def test_every_progressive_jpeg_in_the_corpus_decodes_the_same() -> None:
    tried = 0
    for path in sorted(CORPUS.glob("formats/jpeg/*.jpg")):
        data = path.read_bytes()
        if Image.open(io.BytesIO(data)).info.get("progressive") and Image.open(io.BytesIO(data)).mode != "CMYK":
            _assert_same_eighth_scale_decode(data)
            tried += 1
    assert tried >= 2


def test_markers_hidden_in_segments_and_between_scans_are_walked_over() -> None:
    data = _progressive_jpeg(subsampling=2)
    # An EXIF-like APP1 that holds a whole JPEG (a thumbnail, with its own SOF and SOS), and a
    # comment between two scans: neither may be taken for a scan of the image.
    thumbnail = _progressive_jpeg(64, 48)
    with_app1 = data[:2] + _segment(0xE1, b"Exif\x00\x00" + thumbnail) + data[2:]
    second_scan = with_app1.index(b"\xff\xda", with_app1.index(b"\xff\xda", len(thumbnail) + 20) + 2)
    edited = with_app1[:second_scan] + _segment(0xFE, b"\xff\xda a comment \xff\xd9") + with_app1[second_scan:]
    _assert_same_eighth_scale_decode(edited)


@pytest.mark.parametrize(
    "case",
    ["baseline", "truncated", "arithmetic", "garbage", "two-frames"],
)
def test_files_it_does_not_understand_are_left_alone(case: str) -> None:
    data = _progressive_jpeg(800, 600)
    if case == "baseline":
        out = io.BytesIO()
        _photo(800, 600).save(out, "JPEG", quality=90)
        data = out.getvalue()
    elif case == "truncated":
        data = data[: len(data) // 2]
    elif case == "arithmetic":
        data = data.replace(b"\xff\xc2", b"\xff\xca", 1)  # SOF10
    elif case == "garbage":
        data = b"\xff\xd8" + b"\x00" * 100
    else:
        frame = data.index(b"\xff\xc2")
        length = int.from_bytes(data[frame + 2 : frame + 4], "big")
        data = data[: frame + 2 + length] + data[frame : frame + 2 + length] + data[frame + 2 + length :]
    assert dc_only(data) is None


def test_a_scan_bomb_is_left_to_the_plain_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _progressive_jpeg(800, 600)
    assert dc_only(data) is not None
    monkeypatch.setattr(_progressive, "_MAX_SCANS", 3)
    assert dc_only(data) is None


def test_the_kernel_drops_the_ac_scans_only_where_the_decode_is_at_one_eighth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used: list[int] = []

    def spy(data: bytes) -> bytes | None:
        used.append(len(data))
        return dc_only(data)

    monkeypatch.setattr(_pil, "dc_only", spy)
    large, small = _progressive_jpeg(2400, 1800), _progressive_jpeg(1200, 900)  # 1/8 and 1/4 scale
    lean = render(large, SPEC, Limits())
    assert used == [len(large)]
    render(small, SPEC, Limits())
    assert used == [len(large)]  # at 1/4 the decode reads AC coefficients: the file is decoded as it is

    monkeypatch.setattr(_pil, "dc_only", lambda data: None)
    whole = render(large, SPEC, Limits())
    assert lean == whole  # the same thumbnail, byte for byte
    assert (lean.width, lean.height) == (256, 192)


def test_damaged_files_never_raise_from_the_rewrite() -> None:
    data = _progressive_jpeg(800, 600)
    rng = random.Random(5)
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.choice((0x00, 0xFF, 0xDA, 0xD9, rng.randrange(256)))
        cut = bytes(damaged[: rng.randrange(2, len(damaged) + 1)])
        result = dc_only(cut)  # None or a file; the decoder judges it as it would the original
        assert result is None or result.startswith(b"\xff\xd8")
