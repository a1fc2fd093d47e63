"""The libvips half of the kernel: locked-down loaders, shrink-on-load thumbnails, and the one encoder."""

from __future__ import annotations

from typing import Any

import pyvips
from PIL import Image

from imgpipe.domain.errors import ImageTooLarge
from imgpipe.imaging import _pil
from imgpipe.imaging._libwebp import Fitted
from imgpipe.imaging.types import ImageFormat, Limits, Rendered, VariantSpec

__all__ = ["LOADERS", "configure_vips", "encode", "from_fitted", "from_pixels", "orient", "thumbnail"]

# The only libvips loaders that may ever run, by sniffed format. Everything else
# (svgload, matrixload, csvload, rawload, vipsload, uhdrload, heifload...) is blocked.
LOADERS: dict[ImageFormat, tuple[str, str]] = {
    ImageFormat.JPEG: ("jpegload", "VipsForeignLoadJpeg"),
    ImageFormat.PNG: ("pngload", "VipsForeignLoadPng"),
    ImageFormat.WEBP: ("webpload", "VipsForeignLoadWebp"),
    ImageFormat.GIF: ("gifload", "VipsForeignLoadNsgif"),
    ImageFormat.TIFF: ("tiffload", "VipsForeignLoadTiff"),
}
# "error" rejects truncated and corrupt data; "warning" would also reject JPEGs with junk
# between markers that libjpeg (and every browser) decodes fine.
_FAIL_ON = "error"


def configure_vips(threads: int) -> None:
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(threads)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for _, type_name in LOADERS.values():
        pyvips.operation_block_set(type_name, False)


def thumbnail(data: bytes, fmt: ImageFormat, spec: VariantSpec, limits: Limits, orientation: int) -> pyvips.Image:
    """Decode with shrink-on-load, fit inside the spec, upright, in 8-bit sRGB.

    ``orientation`` is the probe's, never the loader's: the thumbnail then always turns
    the way the probe reported the original's displayed size.
    """
    nickname, _ = LOADERS[fmt]
    load = getattr(pyvips.Image, f"{nickname}_source")  # explicit: libvips never sniffs for us
    source = pyvips.Source.new_from_memory(data)  # no copy; both loads below read it
    header = load(source, fail_on=_FAIL_ON)  # lazy: header only, pixels are not touched yet
    width, height = header.width, header.height
    if width * height > limits.max_pixels:
        raise ImageTooLarge(f"The image is {width} x {height} pixels; the limit is {limits.max_pixels:,}.")
    orientation = orientation if 1 <= orientation <= 8 else 1
    box = spec.stored(orientation)
    box_w, box_h = box.width, box.height
    image = load(source, fail_on=_FAIL_ON, access="sequential", **_shrink_on_load(fmt, width, height, box_w, box_h))
    if image.interpretation == "cmyk":
        # Before the resize: thumbnail_image would convert CMYK itself, without black point
        # compensation. CMYK is rare enough to pay for the bigger transform.
        image = _icc_to_srgb(image, "cmyk").copy()
        image.remove("icc-profile-data")
    image = image.thumbnail_image(box_w, height=box_h, size="down", no_rotate=True)
    # After the resize, not thumbnail's export_profile, which transforms the
    # shrunk-on-load image and costs as much again as decoding a 12 MP JPEG at 1/8.
    return orient(_profile_to_srgb(image), orientation)


def _profile_to_srgb(image: pyvips.Image) -> pyvips.Image:
    """The embedded profile applied, if any. 8-bit RGB(A) goes through Pillow's cached transform for the
    profile: libvips builds a transform at every call (3.2 ms for a thumbnail, against 1.4 through the
    cache, copies included). Other layouts, and profiles Pillow cannot use, go through libvips."""
    if not image.get_typeof("icc-profile-data"):
        return image
    icc = image.get("icc-profile-data")
    if image.format == "uchar" and image.bands in (3, 4) and image.interpretation == "srgb":
        # Rendered once: a sequential load reads its file once, and both paths below use these bytes.
        width, height, bands = image.width, image.height, image.bands
        raw = image.write_to_memory()
        pixels = Image.frombytes("RGB" if bands == 3 else "RGBA", (width, height), raw)
        converted = _pil.icc_to_srgb(pixels, icc)
        if converted is not pixels:  # converted; the same image back means Pillow could not use the profile
            return from_pixels(converted.tobytes(), converted.width, converted.height, bands)
        image = from_pixels(raw, width, height, bands)
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    return _icc_to_srgb(image, "srgb")


def _icc_to_srgb(image: pyvips.Image, fallback: str) -> pyvips.Image:
    """The embedded profile (``fallback`` when it is missing or unusable) to sRGB.

    Relative colorimetric with black point compensation, as Photoshop does by default:
    without it a CMYK rich black lands on print-paper dark grey.
    """
    return image.icc_transform(
        "srgb", embedded=True, input_profile=fallback, intent="relative", black_point_compensation=True
    )


def _shrink_on_load(fmt: ImageFormat, width: int, height: int, box_w: int, box_h: int) -> dict[str, Any]:
    """Loader options that decode straight to (just above) the target size.

    libvips' own thumbnail_buffer stops JPEG shrink-on-load a factor of two early, for
    sharpness; libjpeg's scaled IDCT is good enough to go all the way, and that is what
    keeps a 12 MP JPEG near ``djpeg -scale 1/8`` speed.
    """
    scale = min(box_w / width, box_h / height)
    if scale >= 1:
        return {}
    fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
    if fmt is ImageFormat.JPEG:
        for shrink in (8, 4, 2):
            if -(-width // shrink) >= fit_w and -(-height // shrink) >= fit_h:
                return {"shrink": shrink}
    elif fmt is ImageFormat.WEBP:
        return {"scale": min(1.0, max((fit_w + 1) / width, (fit_h + 1) / height))}
    return {}


def orient(image: pyvips.Image, orientation: int) -> pyvips.Image:
    """Apply EXIF orientation 2-8 to stored pixels so they look upright."""
    if orientation in (3, 6, 8):
        return image.rot({3: "d180", 6: "d90", 8: "d270"}[orientation])
    if orientation in (5, 7):  # transpose and transverse: a quarter turn, then a mirror
        return image.rot("d90" if orientation == 5 else "d270").fliphor()
    if orientation == 2:
        return image.fliphor()
    if orientation == 4:
        return image.flipver()
    return image


def from_fitted(fitted: Fitted, orientation: int) -> pyvips.Image:
    """Pixels libwebp decoded to the fitted size: unpremultiplied, to sRGB from their profile, upright."""
    image = pyvips.Image.new_from_memory(fitted.pixels, fitted.width, fitted.height, fitted.bands, "uchar")
    image = image.copy(interpretation="srgb")
    if fitted.bands == 4:
        image = image.unpremultiply().cast("uchar")
    if fitted.icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", fitted.icc)
        image = _profile_to_srgb(image)
    return orient(image, orientation)  # any other value leaves the pixels as stored


def from_pixels(raw: bytes, width: int, height: int, bands: int) -> pyvips.Image:
    """An 8-bit sRGB (or grey) libvips image over interleaved pixels: Pillow's, or libvips' rendered to bytes."""
    image = pyvips.Image.new_from_memory(raw, width, height, bands, "uchar")
    return image.copy(interpretation="b-w" if bands <= 2 else "srgb")


def encode(image: pyvips.Image, spec: VariantSpec) -> Rendered:
    """JPEG when opaque, WebP with alpha otherwise; all metadata (EXIF, XMP, IPTC, ICC) dropped."""
    # Run the pipeline once, into memory: the alpha test and the save would each run it again.
    image = _eight_bit(image).copy_memory()
    if image.hasalpha():
        if image[image.bands - 1].min() < 255:
            # Lossy WebP is always 4:2:0; tiny images with alpha (icons) stay exact instead.
            tiny = min(image.width, image.height) < 64
            # effort 0: measured on a 256 x 160 RGBA thumbnail, 6.7 ms against 14.8 at effort 2
            # and 25.6 at the default 4, for 9 % (1.4 KB) more bytes than effort 2.
            data = image.webpsave_buffer(Q=spec.jpeg_quality, keep="none", effort=0, lossless=tiny)
            return Rendered(_bytes(data), "image/webp", image.width, image.height)
        image = image[: image.bands - 1] if image.bands > 2 else image[0]
    # 4:2:0 chroma smears tiny images (icons, pixel art) beyond recognition; keep it full there.
    subsample = "off" if min(image.width, image.height) < 64 else "auto"
    data = image.jpegsave_buffer(Q=spec.jpeg_quality, keep="none", optimize_coding=True, subsample_mode=subsample)
    return Rendered(_bytes(data), "image/jpeg", image.width, image.height)


def _eight_bit(image: pyvips.Image) -> pyvips.Image:
    if image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        target = "b-w" if image.bands <= 2 and image.interpretation in ("b-w", "grey16") else "srgb"
        image = image.colourspace(target)
        if image.format != "uchar":
            image = image.cast("uchar")
    return image


def _bytes(data: Any) -> bytes:
    return bytes(data)
