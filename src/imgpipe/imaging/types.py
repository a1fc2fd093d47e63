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

    @property
    def extension(self) -> str:
        """The file name extension object keys get (the key is the server's, never the client's)."""
        return _EXTENSIONS[self]

    @classmethod
    def of_content_type(cls, content_type: str) -> ImageFormat:
        return next(f for f, t in _CONTENT_TYPES.items() if t == content_type)


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

_EXTENSIONS = {
    ImageFormat.JPEG: "jpg",
    ImageFormat.PNG: "png",
    ImageFormat.WEBP: "webp",
    ImageFormat.GIF: "gif",
    ImageFormat.TIFF: "tif",
    ImageFormat.BMP: "bmp",
    ImageFormat.HEIF: "heic",
    ImageFormat.AVIF: "avif",
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

    def stored(self, orientation: int) -> VariantSpec:
        """This box in the stored image's axes: turned when EXIF orientation 5-8 says it is stored a quarter turn."""
        return VariantSpec(self.name, self.height, self.width, self.jpeg_quality) if orientation >= 5 else self


@dataclass(frozen=True, slots=True)
class Rendered:
    """A finished variant: encoded bytes and what they are."""

    data: bytes
    content_type: str
    width: int
    height: int

    @property
    def format(self) -> ImageFormat:
        return ImageFormat.of_content_type(self.content_type)
