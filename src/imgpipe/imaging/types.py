"""Value types shared by the sniffer, the header probe and the kernel. No I/O lives here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ImageFormat", "ImageInfo", "Limits", "Rendered", "VariantSpec"]


class ImageFormat(StrEnum):
    """Raster formats imgpipe accepts, decided from the bytes, never the name."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"
    GIF = "gif"
    TIFF = "tiff"
    BMP = "bmp"
    HEIF = "heif"  # HEIC and other HEVC-coded HEIF
    AVIF = "avif"

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self]


_CONTENT_TYPES = {
    ImageFormat.JPEG: "image/jpeg",
    ImageFormat.PNG: "image/png",
    ImageFormat.WEBP: "image/webp",
    ImageFormat.GIF: "image/gif",
    ImageFormat.TIFF: "image/tiff",
    ImageFormat.BMP: "image/bmp",
    ImageFormat.HEIF: "image/heic",
    ImageFormat.AVIF: "image/avif",
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What the server accepts; checked from the header before any pixel is decoded."""

    max_pixels: int = 100_000_000
    # No per-side cap beyond what the formats allow: a 65,535 x 1 panorama is fine.


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What a header says, without decoding pixels.

    ``width`` and ``height`` are the displayed (upright) size: EXIF orientation and
    HEIF/AVIF clean aperture and rotation applied, as the variants are rendered.
    """

    format: ImageFormat
    width: int
    height: int

    @property
    def content_type(self) -> str:
        return self.format.content_type

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One variant to make. The default is the thumbnail of the original description."""

    name: str = "thumbnail"
    width: int = 256
    height: int = 256
    jpeg_quality: int = 80


@dataclass(frozen=True, slots=True)
class Rendered:
    """A finished variant: encoded bytes and what they are."""

    data: bytes
    content_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}[self.content_type]
