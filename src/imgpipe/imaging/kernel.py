"""Make one variant from the original bytes: probe, route to a decoder, thumbnail, strip, encode.

Runs inside the kernel processes (never the API process): call ``configure`` once per
process; ``render`` calls it itself if nobody did.
"""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pillow_heif
import pyvips
from PIL import AvifImagePlugin, Image, ImageFile, features
from PIL import __version__ as pillow_version

from imgpipe.domain.errors import CorruptImage, ImageTooLarge
from imgpipe.imaging import _libwebp, _pil, _png_idat, _vips
from imgpipe.imaging._header import Header
from imgpipe.imaging.probe import inspect
from imgpipe.imaging.types import ImageFormat, Limits, Rendered, VariantSpec

__all__ = ["ROUTES", "configure", "library_versions", "render"]

# Which decoder handles each sniffed format. AVIF goes to Pillow's libavif (dav1d 1.5.3),
# not libvips 8.18's heifload: measured (2 cores, one decode thread each, median of 7,
# decode + thumbnail to 256 px + JPEG) Pillow 208 ms vs libvips 564 ms on a 12 MP 8-bit
# 4:2:0 AVIF (2.7x), 15 vs 54 ms on the corpus's 1204x800 10-bit fox (3.5x), 14 vs 41 ms
# on the 722x1024 kimono (2.9x). libvips' heifload also refuses 'avis' sequences.
ROUTES: dict[ImageFormat, str] = {
    ImageFormat.JPEG: (
        "Pillow (libjpeg-turbo, DCT-scaled draft decode; at 1/8, progressive files without their AC scans); "
        "libvips jpegload for CMYK"
    ),
    ImageFormat.PNG: "ISA-L inflate (isal), then libvips pngload; libvips alone for small or unusual files",
    ImageFormat.WEBP: "libwebp's scaled decode (Pillow's libwebp); libvips webpload for animations",
    ImageFormat.GIF: "libvips gifload (first frame)",
    ImageFormat.TIFF: "libvips tiffload; Pillow for CIE L*a*b* and odd bit depths",
    ImageFormat.BMP: "Pillow; own mask reader for 16/32-bit bitfields",
    ImageFormat.HEIF: "pillow-heif (libheif + libde265), embedded thumbnail when big enough; AV1 items: Pillow",
    ImageFormat.AVIF: "Pillow AvifImagePlugin (libavif + dav1d), first frame",
}

# What a decoder may raise on hostile input. Anything else (TypeError, KeyError...) is a
# bug in this module and should surface as one.
_DECODER_ERRORS = (pyvips.Error, OSError, ValueError, EOFError, SyntaxError, RuntimeError, zlib.error)

_configured: list[int] = []  # the thread count configure() applied in this process, if any


def configure(threads: int = 1) -> None:
    """Set the process-wide decoder state: no caches, ``threads`` per decode, loaders locked down. Idempotent."""
    _vips.configure_vips(threads)
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut-off file is an error, never a grey half image
    AvifImagePlugin.DEFAULT_MAX_THREADS = threads
    pillow_heif.options.DECODE_THREADS = threads
    pillow_heif.options.DEPTH_IMAGES = False
    pillow_heif.options.AUX_IMAGES = False
    pillow_heif.options.THUMBNAILS = True
    _configured[:] = [threads]


def render(data: bytes, spec: VariantSpec, limits: Limits) -> Rendered:
    """One variant that fits inside spec.width x spec.height, upright, sRGB, with no metadata.

    Raises EmptyUpload, UnsupportedImage, CorruptImage or ImageTooLarge; never a raw
    decoder exception.
    """
    if not _configured:
        configure()
    header = inspect(io.BytesIO(data), limits)
    try:
        if header.info.format is ImageFormat.JPEG:
            with _pillow_guard(limits):
                jpeg = _pil.open_jpeg(data, limits, header.orientation, spec)
                if jpeg.mode in ("L", "RGB"):
                    return _pil.render_jpeg(jpeg, header.orientation, spec)
        return _vips.encode(_decode(data, header, spec, limits), spec)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge() from exc
    except _DECODER_ERRORS as exc:
        raise CorruptImage() from exc


def library_versions() -> dict[str, str]:
    """Native library versions and the decoder routing, for ``imgpipe doctor``."""
    heif = pillow_heif.libheif_info()
    versions = {
        "libvips": ".".join(str(pyvips.version(i)) for i in range(3)),
        "pyvips": pyvips.__version__,
        "pillow": pillow_version,
        "pillow-heif": pillow_heif.__version__,
        "libheif": str(heif.get("libheif", "missing")),
        "libheif decoders": ", ".join(f"{k}: {v}" for k, v in heif.get("decoders", {}).items()) or "none",
        "libavif (Pillow)": features.version("avif") or "missing",
        "libjpeg (Pillow)": features.version("jpg") or "missing",
        "libwebp (Pillow)": features.version("webp") or "missing",
        "libwebp scaled decode": "bound" if _libwebp.library() is not None else "not found: libvips webpload instead",
    }
    versions.update({f"decoder {fmt.value}": route for fmt, route in ROUTES.items()})
    return versions


def _decode(data: bytes, header: Header, spec: VariantSpec, limits: Limits) -> pyvips.Image:
    fmt = header.info.format
    if fmt is ImageFormat.WEBP:
        box = spec.stored(header.orientation)
        fitted = _libwebp.decode_fitted(data, box.width, box.height)
        if fitted is not None:
            return _vips.from_fitted(fitted, header.orientation)
    if fmt is ImageFormat.PNG and (stored := _png_idat.with_stored_idat(data)) is not None:
        # ISA-L inflated the image data; libvips unfilters it. Into memory here: libvips reads
        # lazily, and ``stored`` is gone when this returns (the thumbnail is a small copy).
        return _vips.thumbnail(stored, fmt, spec, limits, header.orientation).copy_memory()
    if fmt in _vips.LOADERS and (fmt is not ImageFormat.TIFF or header.libvips_tiff):
        return _vips.thumbnail(data, fmt, spec, limits, header.orientation)
    with _pillow_guard(limits):
        if fmt is ImageFormat.AVIF or (fmt is ImageFormat.HEIF and header.codec == "av01"):
            image = _pil.decode_avif(data, header, limits)
        elif fmt is ImageFormat.HEIF:
            image = _pil.decode_heic(data, spec, limits)
        elif fmt is ImageFormat.BMP:
            image = _pil.decode_bmp(data, header, limits)
        else:
            image = _pil.decode_tiff(data, limits)
        small = _pil.fit_to_srgb(image, spec)
    return _vips.from_pixels(small.tobytes(), small.width, small.height, len(small.getbands()))


@contextmanager
def _pillow_guard(limits: Limits) -> Iterator[None]:
    """Pillow's own bomb check at our limit; its other warnings (bad EXIF...) are not the caller's business."""
    with _pil.LOCK, warnings.catch_warnings():
        # Process-wide in Pillow: set for this render only, as the warning filters are.
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limits.max_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before
