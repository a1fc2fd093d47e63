"""Decide an upload's format from its magic bytes, by allowlist. Names and declared types are never trusted."""

from __future__ import annotations

from imgpipe.domain.errors import EmptyUpload, UnsupportedImage
from imgpipe.imaging.types import ImageFormat

__all__ = ["HEAD_SIZE", "sniff"]

HEAD_SIZE = 64
"""How many leading bytes ``sniff`` needs; more are ignored, fewer may hide ISOBMFF brands."""

# ISOBMFF brands, major or compatible. An AVIF brand anywhere wins: HEIF brands alone
# (mif1/msf1 in particular) say "some HEIF", and the kernel routes by the primary
# item's codec (hvc1 or av01) that the probe reads from the meta box.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})

_MAGIC: tuple[tuple[bytes, ImageFormat], ...] = (
    (b"\xff\xd8\xff", ImageFormat.JPEG),  # also MPO, whose first image is a plain JPEG
    (b"\x89PNG", ImageFormat.PNG),  # the probe checks the full 8-byte signature
    (b"GIF87a", ImageFormat.GIF),
    (b"GIF89a", ImageFormat.GIF),
    (b"II*\x00", ImageFormat.TIFF),
    (b"MM\x00*", ImageFormat.TIFF),
    (b"II+\x00", ImageFormat.TIFF),  # BigTIFF
    (b"MM\x00+", ImageFormat.TIFF),
    (b"BM", ImageFormat.BMP),
)


def sniff(head: bytes) -> ImageFormat:
    """Raise EmptyUpload for no bytes and UnsupportedImage for anything not on the allowlist."""
    if not head:
        raise EmptyUpload()
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[4:8] == b"ftyp":
        isobmff = _isobmff_format(head)
        if isobmff is not None:
            return isobmff
    raise UnsupportedImage()


def _isobmff_format(head: bytes) -> ImageFormat | None:
    box_size = int.from_bytes(head[:4], "big")
    if box_size < 16 or len(head) < 12:
        return None
    major = head[8:12]
    end = min(box_size, len(head))
    compatible = {head[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AVIF_BRANDS:
        return ImageFormat.AVIF
    if major in _HEIF_BRANDS - {b"mif1", b"msf1"}:
        return ImageFormat.HEIF
    if compatible & _AVIF_BRANDS:
        return ImageFormat.AVIF
    if major in _HEIF_BRANDS or compatible & _HEIF_BRANDS:
        return ImageFormat.HEIF
    return None
