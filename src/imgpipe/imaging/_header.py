"""What the header probe learnt beyond ImageInfo, and the pixel-limit rule. No I/O lives here."""

from __future__ import annotations

from dataclasses import dataclass, replace

from imgpipe.domain.errors import CorruptImage, ImageTooLarge
from imgpipe.imaging.types import ImageFormat, ImageInfo, Limits

__all__ = ["Crop", "Header", "Mirror", "Rotate", "Transform", "checked_info", "upright"]


@dataclass(frozen=True, slots=True)
class Crop:
    """HEIF/AVIF clean aperture (``clap``), already turned into a pixel rectangle of the coded image."""

    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Rotate:
    """HEIF/AVIF ``irot``: quarter turns anti-clockwise."""

    quarter_turns: int


@dataclass(frozen=True, slots=True)
class Mirror:
    """HEIF/AVIF ``imir``: axis 0 mirrors top-to-bottom, axis 1 left-to-right (as libheif and libavif read it)."""

    axis: int


Transform = Crop | Rotate | Mirror


@dataclass(frozen=True, slots=True)
class Header:
    """A probed header. Defaults mean "nothing special": decode with the format's usual decoder."""

    info: ImageInfo  # the displayed size once ``probe.inspect`` has applied ``orientation``
    # EXIF orientation 1-8 the kernel applies: JPEG APP1, WebP EXIF chunk, TIFF tag 274,
    # PNG eXIf / raw profile / XMP. Always 1 for GIF, BMP, HEIF and AVIF (see transforms).
    orientation: int = 1
    # HEIF/AVIF: the primary item's codec ("hvc1" or "av01"), its transformative
    # properties in association order, and whether ftyp names an AVIF brand.
    codec: str = ""
    transforms: tuple[Transform, ...] = ()
    avif_brand: bool = False
    # TIFF: False for layouts libvips' tiffload refuses (CIE L*a*b*, 12-bit samples...).
    libvips_tiff: bool = True
    # BMP: 16/32-bit BI_BITFIELDS, decoded by our own mask reader rather than Pillow.
    bmp_bitfields: bool = False


def checked_info(fmt: ImageFormat, width: int, height: int, limits: Limits) -> ImageInfo:
    """ImageInfo for a declared size: CorruptImage if a side is not positive, ImageTooLarge past the limit."""
    if width <= 0 or height <= 0:
        raise CorruptImage(f"The {fmt.name} header declares an empty or negative size ({width} x {height}).")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"The image is {width} x {height} pixels; this server accepts at most {limits.max_pixels:,} pixels."
        )
    return ImageInfo(fmt, width, height)


def upright(header: Header) -> Header:
    """The header with ``info`` turned to the displayed size: orientations 5-8 swap the sides."""
    if header.orientation < 5:
        return header
    info = header.info
    return replace(header, info=ImageInfo(info.format, info.height, info.width))
