"""The test corpus manifest, independent reference decodes, and checks on encoded output. Test support only."""

from __future__ import annotations

import csv
import io
import re
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pillow_heif
import pyvips
from PIL import Image, ImageChops, ImageCms, ImageStat
from PIL.TiffImagePlugin import TiffImageFile

from imgpipe.imaging.probe import probe_bytes
from imgpipe.imaging.types import Limits, Rendered, VariantSpec

__all__ = [
    "CORPUS",
    "LIMITS",
    "MAX_DIFFERENCE",
    "SPEC",
    "assert_clean_thumbnail",
    "assert_upright_and_faithful",
    "TRANSFORMS",
    "Reference",
    "Row",
    "compare",
    "metadata_in",
    "reference",
    "rows",
]

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

# Formats imgpipe accepts, as the manifest's format column names them ("PNG(undecodable)" is a PNG).
ACCEPTED = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "HEIF", "AVIF", "EMPTY"})

SPEC = VariantSpec()  # the 256 x 256 thumbnail
LIMITS = Limits()

# Mean absolute difference (0-255, compared at <= 32 px) to an independent decode made
# upright by hand. Correct renders measure 0.5-8 on this corpus; a wrong orientation
# measures 35-60 and an ignored wide-gamut profile 2-50 (checked separately).
MAX_DIFFERENCE = 10.0

_T = Image.Transpose
# `expected` -> what turns the stored pixels upright (EXIF orientation 2-8 as Pillow applies it).
TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "ok": lambda im: im,
    "ok-flip-h": lambda im: im.transpose(_T.FLIP_LEFT_RIGHT),
    "ok-rotate-180": lambda im: im.transpose(_T.ROTATE_180),
    "ok-flip-v": lambda im: im.transpose(_T.FLIP_TOP_BOTTOM),
    "ok-transpose": lambda im: im.transpose(_T.TRANSPOSE),
    "ok-rotate-90": lambda im: im.transpose(_T.ROTATE_270),  # EXIF 6: 90 degrees clockwise
    "ok-transverse": lambda im: im.transpose(_T.TRANSVERSE),
    "ok-rotate-270": lambda im: im.transpose(_T.ROTATE_90),  # EXIF 8: 90 degrees anti-clockwise
}


@dataclass(frozen=True)
class Row:
    path: str
    format: str  # as in the manifest, e.g. "PNG(undecodable)"
    width: int | None
    height: int | None
    expected: str
    note: str

    @property
    def base_format(self) -> str:
        return self.format.split("(")[0]

    @property
    def accepted(self) -> bool:
        return self.base_format in ACCEPTED

    @property
    def file(self) -> Path:
        return CORPUS / self.path

    def read(self) -> bytes:
        return self.file.read_bytes()


@cache
def rows() -> tuple[Row, ...]:
    with (CORPUS / "MANIFEST.tsv").open(newline="") as f:
        return tuple(
            Row(
                r["path"],
                r["format"],
                int(r["width"]) if r["width"] else None,
                int(r["height"]) if r["height"] else None,
                r["expected"],
                r["note"],
            )
            for r in csv.DictReader(f, delimiter="\t")
        )


# --- reference decodes -----------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The original decoded by Pillow or pillow-heif (never the kernel's own code path)."""

    stored: Image.Image  # sRGB RGBA pixels as stored, before the row's transform (<= 512 px)
    stored_raw: Image.Image  # the same, with any ICC profile ignored
    expected: str
    size: tuple[int, int]  # the full stored size

    @property
    def upright_size(self) -> tuple[int, int]:
        turned = self.expected in ("ok-rotate-90", "ok-rotate-270", "ok-transpose", "ok-transverse")
        return self.size[::-1] if turned else self.size

    def upright(self, transform: str | None = None, *, honour_icc: bool = True) -> Image.Image:
        """The stored pixels under ``transform`` (default: the row's expectation)."""
        steps = TRANSFORMS.get(transform or self.expected, TRANSFORMS["ok"])
        return steps(self.stored if honour_icc else self.stored_raw)


def reference(row: Row) -> Reference | None:
    """None when no independent decoder reads the file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the corpus's broken metadata
        return _reference(row)


def _reference(row: Row) -> Reference | None:
    data = row.read()
    if row.base_format == "HEIF":
        heif = pillow_heif.open_heif(io.BytesIO(data))  # libheif has applied irot/imir/clap
        image = heif.to_pillow()
        bits = heif.info.get("bit_depth", 8)
        return Reference(_small(_srgb(image, bits)), _small(_srgb(image, bits, honour_icc=False)), "ok", image.size)
    try:
        image = Image.open(io.BytesIO(data))
        if image.format == "PNG" and image.mode == "L" and isinstance(image.info.get("transparency"), int):
            # Pillow keeps a 1/2/4-bit grey tRNS value unscaled while scaling the pixels.
            image.info["transparency"] *= 255 // ((1 << data[24]) - 1)
        orientation_before = image.getexif().get(0x0112) if row.base_format == "TIFF" else None
        bits = max(image.tag_v2.get(258, (16,))) if isinstance(image, TiffImageFile) else 16
        image.seek(0)
        image.load()
    except (OSError, ValueError):
        if not row.path.endswith("rgb32bf.bmp"):
            return None
        image, bits, orientation_before = _bitfields_bmp(data), 8, None
    if row.expected == "ok-crop":
        image = image.crop(_clean_aperture(data, image.size))
    if orientation_before not in (None, 1) and image.getexif().get(0x0112) is None:
        # Pillow's libtiff path applies the TIFF Orientation tag while loading: undo it to
        # get the stored pixels back.
        image = _inverse(row.expected)(image)
    stored, raw = _small(_srgb(image, bits)), _small(_srgb(image, bits, honour_icc=False))
    return Reference(stored, raw, row.expected, image.size)


def _small(image: Image.Image) -> Image.Image:
    """At most 512 px: outputs are 256 px and comparisons 32 px, so the rest is only slow."""
    if max(image.size) > 512:
        image = image.copy()
        image.thumbnail((512, 512), Image.Resampling.LANCZOS)
    return image


def _inverse(expected: str) -> Callable[[Image.Image], Image.Image]:
    inverse = {"ok-rotate-90": "ok-rotate-270", "ok-rotate-270": "ok-rotate-90"}.get(expected, expected)
    return TRANSFORMS.get(inverse, TRANSFORMS["ok"])


def _srgb(image: Image.Image, bits: int = 16, *, honour_icc: bool = True) -> Image.Image:
    """RGBA in sRGB; ``bits`` is the significant depth of 16-bit containers (12-bit TIFF)."""
    icc = image.info.get("icc_profile") if honour_icc else None
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        image = image.convert("I").point(lambda v: v / (1 << (bits - 8))).convert("L")
    if image.mode == "LAB":
        image = _convert(image, ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")))
    if image.mode == "CMYK":
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc or _default_cmyk()))
        image = _convert(image, source)
        icc = None
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if alpha else "RGB")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if source.profile.xcolor_space.strip() == "RGB":
                rgb = _convert(image.convert("RGB"), source)
                if alpha:
                    rgb.putalpha(image.getchannel("A"))
                image = rgb
        except ImageCms.PyCMSError:
            pass
    return image.convert("RGBA")


def _convert(image: Image.Image, source: ImageCms.ImageCmsProfile) -> Image.Image:
    """Relative colorimetric with black point compensation, Photoshop's default."""
    converted = ImageCms.profileToProfile(
        image,
        source,
        _SRGB(),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )
    assert converted is not None
    return converted


@cache
def _SRGB() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@cache
def _default_cmyk() -> bytes:
    """The CMYK profile libvips assumes for CMYK images that carry none (as the kernel does)."""
    probe = pyvips.Image.black(1, 1, bands=4).copy(interpretation="cmyk").icc_import(input_profile="cmyk")
    return bytes(probe.get("icc-profile-data"))


def _clean_aperture(data: bytes, size: tuple[int, int]) -> tuple[int, int, int, int]:
    at = data.index(b"clap") + 4
    wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack(">IIIIiIiI", data[at : at + 32])
    width, height = wn / wd, hn / hd
    left = xn / xd + (size[0] - width) / 2
    top = yn / yd + (size[1] - height) / 2
    return round(left), round(top), round(left + width), round(top + height)


def _bitfields_bmp(data: bytes) -> Image.Image:
    """A deliberately naive BI_BITFIELDS reader, for the one bmpsuite file Pillow refuses."""
    (offset,) = struct.unpack_from("<I", data, 10)
    width, height, _, bits = struct.unpack_from("<iiHH", data, 18)
    masks = struct.unpack_from("<III", data, 54)
    stride = (bits * width + 31) // 32 * 4
    image = Image.new("RGB", (width, abs(height)))
    pixels = image.load()
    assert pixels is not None
    for y in range(abs(height)):
        row = offset + (abs(height) - 1 - y if height > 0 else y) * stride
        for x in range(width):
            value = int.from_bytes(data[row + 4 * x : row + 4 * x + 4], "little")
            pixels[x, y] = tuple(_field(value, mask) for mask in masks)
    return image.convert("RGBA")


def _field(value: int, mask: int) -> int:
    shift = (mask & -mask).bit_length() - 1
    top = (mask >> shift).bit_length()
    return ((value & mask) >> shift) * 255 // ((1 << top) - 1)


def compare(output: Image.Image, ref: Image.Image) -> float:
    """Mean absolute difference per channel (0-255) after fitting ``ref`` to the output's size,
    both composited over mid-grey so colours hidden under full transparency do not count."""
    grey = Image.new("RGBA", output.size, (128, 128, 128, 255))
    a = Image.alpha_composite(grey, output.convert("RGBA")).convert("RGB")
    b = Image.alpha_composite(grey, ref.resize(output.size, Image.Resampling.LANCZOS)).convert("RGB")
    # Compared at <= 32 px: dithering, JPEG ringing and resampler differences average out,
    # a wrong orientation or colour space does not.
    scale = min(1.0, 32 / max(a.size))
    if scale < 1:
        small = (max(1, round(a.width * scale)), max(1, round(a.height * scale)))
        a, b = a.resize(small, Image.Resampling.BOX), b.resize(small, Image.Resampling.BOX)
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


# --- metadata in encoded output ----------------------------------------------------------

_JPEG_METADATA = {0xE1: "APP1 (EXIF/XMP)", 0xE2: "APP2 (ICC/MPF)", 0xED: "APP13 (IPTC)", 0xFE: "COM"}
_WEBP_METADATA = {b"EXIF": "EXIF", b"XMP ": "XMP", b"ICCP": "ICC"}


def metadata_in(data: bytes) -> list[str]:
    """Every kind of metadata a viewer could read from the encoded bytes; empty means clean."""
    found: list[str] = []
    image = Image.open(io.BytesIO(data))
    if len(image.getexif()):
        found.append("EXIF (Pillow)")
    found += [
        f"{key} (Pillow)" for key in ("icc_profile", "xmp", "exif", "comment", "photoshop") if image.info.get(key)
    ]
    if data[:2] == b"\xff\xd8":
        found += [
            _JPEG_METADATA.get(m, f"APP{m - 0xE0}")
            for m in _jpeg_markers(data)
            if m in _JPEG_METADATA or 0xE1 <= m <= 0xEF
        ]
    elif data[:4] == b"RIFF":
        found += [_WEBP_METADATA[kind] for kind in _riff_chunks(data) if kind in _WEBP_METADATA]
    return found


def _jpeg_markers(data: bytes) -> list[int]:
    markers, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:
        markers.append(data[i + 1])
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return markers


def _riff_chunks(data: bytes) -> list[bytes]:
    kinds, i = [], 12
    while i + 8 <= len(data):
        kinds.append(data[i : i + 4])
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        i += 8 + size + (size & 1)
    return kinds


_NOTE_SIZE = re.compile(r"display (\d+)x(\d+)")


def displayed_size_in_note(row: Row) -> tuple[int, int] | None:
    match = _NOTE_SIZE.search(row.note)
    return (int(match.group(1)), int(match.group(2))) if match else None


# --- what a good thumbnail of a row looks like ------------------------------------------


def _decoded(rendered: Rendered) -> Image.Image:
    image = Image.open(io.BytesIO(rendered.data))
    image.load()
    assert image.size == (rendered.width, rendered.height)
    assert image.format == {"image/jpeg": "JPEG", "image/webp": "WEBP"}[rendered.content_type]
    return image


def assert_clean_thumbnail(rendered: Rendered) -> Image.Image:
    """It decodes, fits the box, carries no metadata, and is WebP only to keep alpha."""
    image = _decoded(rendered)
    assert 1 <= rendered.width <= SPEC.width and 1 <= rendered.height <= SPEC.height
    assert metadata_in(rendered.data) == []
    if rendered.content_type == "image/webp":
        assert image.mode == "RGBA", "WebP is only chosen to keep an alpha channel"
    return image


def assert_upright_and_faithful(row: Row, rendered: Rendered) -> None:
    """Right size and format, upright, colour-managed: as an independent decoder sees the original."""
    image = assert_clean_thumbnail(rendered)
    ref = reference(row)
    assert ref is not None, "every ok row has an independent decoder"
    upright = ref.upright()

    # Fits the box with the original's aspect ratio, and is never upscaled.
    width, height = ref.upright_size
    scale = min(SPEC.width / width, SPEC.height / height, 1.0)
    assert abs(rendered.width - width * scale) <= 1
    assert abs(rendered.height - height * scale) <= 1
    # The size the API reports for the original is the one the thumbnail shows.
    info = probe_bytes(row.read(), LIMITS)
    shown = min(SPEC.width / info.width, SPEC.height / info.height, 1.0)
    assert abs(rendered.width - info.width * shown) <= 1 and abs(rendered.height - info.height * shown) <= 1

    # Transparency survives as WebP alpha; opaque images become JPEG.
    lowest_alpha, _ = upright.getchannel("A").getextrema()
    assert isinstance(lowest_alpha, int)
    has_alpha = lowest_alpha < 255
    assert rendered.content_type == ("image/webp" if has_alpha else "image/jpeg")

    # Looks like the original made upright...
    difference = compare(image, upright)
    assert difference <= MAX_DIFFERENCE
    # ...and, when it had to be turned, not like any other orientation of it.
    if row.expected in TRANSFORMS and row.expected != "ok" and min(upright.size) >= 8:
        for other in TRANSFORMS:
            wrong = ref.upright(other)
            if other == row.expected or compare(upright, wrong) < 5:
                continue  # symmetric content: that orientation looks the same
            assert difference < compare(image, wrong), f"looks more like {other}"
    # Colour-managed: closer to the profile-honouring decode than to one that ignores it.
    raw = ref.upright(honour_icc=False)
    if compare(raw, upright) > 1.0:
        assert difference < compare(image, raw), "the ICC profile was ignored"
