"""The Pillow half of the kernel: JPEG (not CMYK), AVIF (libavif), HEIC (pillow-heif), BMP, odd TIFF layouts."""

from __future__ import annotations

import io
import math
import threading
from functools import cache, lru_cache

import pillow_heif
import pyvips
from PIL import Image, ImageCms, ImageFile, ImageOps, TiffImagePlugin

from imgpipe.domain.errors import CorruptImage, ImageTooLarge
from imgpipe.imaging._bmp_pixels import decode_bitfields
from imgpipe.imaging._header import Crop, Header, Mirror, Rotate, Transform
from imgpipe.imaging._progressive import dc_only
from imgpipe.imaging.types import ImageFormat, Limits, Rendered, VariantSpec

__all__ = [
    "LOCK",
    "decode_avif",
    "decode_bmp",
    "decode_heic",
    "decode_tiff",
    "encode_jpeg",
    "fit_jpeg",
    "fit_to_srgb",
    "icc_to_srgb",
    "open_jpeg",
    "render_jpeg",
]

# Pillow paths take turns: warnings.catch_warnings() swaps a process-wide filter list (kernel's
# _pillow_guard), and the cached colour transforms keep a one-pixel cache of their own. Renders
# run on threads with ThreadKernel; libvips paths do not need the lock.
LOCK = threading.Lock()

# libvips resizes drafts of this many pixels faster than Pillow, hand-over included: below, the call's
# set-up outweighs the work (+0.2 ms on a 4 MP JPEG's 320x200 draft); above, the copy of the whole does.
_VIPS_RESIZE_PIXELS = range(100_000, 4_000_001)

_T = Image.Transpose
_ROTATIONS = {1: _T.ROTATE_90, 2: _T.ROTATE_180, 3: _T.ROTATE_270}  # Pillow's turns are anti-clockwise
_MIRRORS = {0: _T.FLIP_TOP_BOTTOM, 1: _T.FLIP_LEFT_RIGHT}


def open_jpeg(data: bytes, limits: Limits, orientation: int, spec: VariantSpec) -> Image.Image:
    """The JPEG's header only (no pixels yet), checked against the limit.

    A progressive JPEG that ``fit_jpeg`` will decode at 1/8 scale is opened without the
    scans that scale never reads (``_progressive``): the same pixels, 3 to 4 times faster.
    """
    image = _open(data, "JPEG", limits)
    if image.info.get("progressive") and image.mode in ("L", "RGB"):
        fit_w, fit_h = _draft_size(image, orientation, spec)
        if min(image.width // fit_w, image.height // fit_h) >= 8:  # Pillow's draft() then takes 1/8
            lean = dc_only(data)
            if lean is not None:
                data = lean
                image = _open(data, "JPEG", limits)
    # The whole file in one decode call instead of 64 KiB at a time: 2-3 % less decode time.
    image.decodermaxblock = max(len(data), ImageFile.MAXBLOCK)
    return image


def render_jpeg(image: Image.Image, orientation: int, spec: VariantSpec) -> Rendered:
    """Grey or YCbCr JPEG to the variant, all in Pillow: one pass through libjpeg-turbo, no pipeline set-up.

    ``draft`` decodes straight to the smallest DCT scale (1/8, 1/4, 1/2) still at least the
    fitted size, as libvips' shrink-on-load does; the rest works on that small image.
    Measured on one core (``bench/``'s photographs): 13.6 against 17.4 ms for a 4 MP
    baseline JPEG through libvips, 22.9 against 26.6 at 12 MP; at 24 MP the two are even.
    """
    return encode_jpeg(fit_jpeg(image, orientation, spec), spec)


def fit_jpeg(image: Image.Image, orientation: int, spec: VariantSpec) -> Image.Image:
    """Decode at the DCT scale, fit, sRGB, upright: ``render_jpeg`` up to the encoder."""
    image.draft(image.mode, _draft_size(image, orientation, spec))
    image.load()
    small = fit_to_srgb(image, spec.stored(orientation))
    upright = _orient(small, orientation)
    upright.info.clear()  # or Pillow writes the original's comment (COM) back out
    return upright


def _draft_size(image: Image.Image, orientation: int, spec: VariantSpec) -> tuple[int, int]:
    return _fit(image.width, image.height, spec.stored(orientation))


def encode_jpeg(upright: Image.Image, spec: VariantSpec) -> Rendered:
    """JPEG at the spec's quality, with no metadata (no EXIF, ICC or comment)."""
    out = io.BytesIO()
    # 4:2:0 chroma smears tiny images (icons, pixel art): keep it full there, as the libvips encoder does.
    subsampling = 0 if min(upright.size) < 64 else -1
    upright.save(out, "JPEG", quality=spec.jpeg_quality, optimize=True, subsampling=subsampling)  # no EXIF, no ICC
    return Rendered(out.getvalue(), ImageFormat.JPEG.content_type, upright.width, upright.height)


_ORIENT = {
    2: (_T.FLIP_LEFT_RIGHT,),
    3: (_T.ROTATE_180,),
    4: (_T.FLIP_TOP_BOTTOM,),
    5: (_T.TRANSPOSE,),
    6: (_T.ROTATE_270,),
    7: (_T.TRANSVERSE,),
    8: (_T.ROTATE_90,),
}


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    """EXIF orientation 2-8 applied to the pixels."""
    for step in _ORIENT.get(orientation, ()):
        image = image.transpose(step)
    return image


def decode_avif(data: bytes, header: Header, limits: Limits) -> Image.Image:
    """libavif decodes the first frame; clap, irot and imir come from our own parse of the header."""
    if not header.avif_brand:
        # An AV1 payload in a file that only names HEIF brands: libavif insists on seeing
        # 'avif', and the brand is all that differs. Rewrite it in a copy.
        data = data[:8] + b"avif" + data[12:]
    image: Image.Image = _open(data, "AVIF", limits)
    image.load()
    for step in header.transforms:
        image = _apply(image, step)
    image.info.pop("exif", None)  # Pillow mirrors irot/imir into EXIF; we applied them already
    return image


def decode_heic(data: bytes, spec: VariantSpec, limits: Limits) -> Image.Image:
    """libheif applies clap, irot and imir; a large enough embedded thumbnail is decoded instead."""
    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    if not len(heif):
        raise CorruptImage("The HEIF file holds no image libheif can decode.")
    width, height = heif.size
    _check(width, height, limits)
    primary = heif[heif.primary_index]
    fit_w, fit_h = _fit(width, height, spec)
    thumbnails = primary.info.get("thumbnails") or []
    assert isinstance(thumbnails, list)
    for index in range(len(thumbnails)):
        thumb = primary.get_thumbnail(index)
        tw, th = thumb.size
        same_shape = abs(tw * height - th * width) <= max(tw, th) * max(width, height) // 50
        if tw >= fit_w and th >= fit_h and same_shape:  # shrink-on-load, HEIF style
            image: Image.Image = thumb.to_pillow()
            break
    else:
        image = primary.to_pillow()
    if image.mode.startswith("I;16"):
        image.info["bits"] = primary.info.get("bit_depth", 16)
    return image


def decode_bmp(data: bytes, header: Header, limits: Limits) -> Image.Image:
    if header.bmp_bitfields:
        return decode_bitfields(data)  # Pillow knows only a few mask layouts
    image = _open(data, "BMP", limits)
    image.load()
    return image


def decode_tiff(data: bytes, limits: Limits) -> Image.Image:
    """For CIE L*a*b* and 12-bit TIFFs; Pillow applies the Orientation tag while loading or here."""
    image = _open(data, "TIFF", limits)
    assert isinstance(image, TiffImagePlugin.TiffImageFile)
    bits = image.tag_v2.get(258, (8,))
    image.load()
    upright = ImageOps.exif_transpose(image)
    upright.info["bits"] = max(bits) if isinstance(bits, tuple) and bits else 8
    return upright


def fit_to_srgb(image: Image.Image, spec: VariantSpec) -> Image.Image:
    """Fit inside the spec (never upscaling), as 8-bit L, LA, RGB or RGBA in sRGB."""
    icc = image.info.get("icc_profile")
    image = _shrunk(_eight_bit(image), spec)
    if icc and image.mode in ("RGB", "RGBA"):
        image = _icc_to_srgb(image, icc)
    return image


def _shrunk(image: Image.Image, spec: VariantSpec) -> Image.Image:
    """Lanczos3 down to fit the spec, at the size Pillow's ``thumbnail`` picks.

    A mid-sized opaque image (a 12 or 24 MP JPEG's DCT-scaled draft) goes through libvips'
    vectorised reduce: 2.6 against 5.4 ms from a 24 MP JPEG's 750x500 draft, 1.2 against 2.6
    from a 12 MP one, hand-over included (whole renders: 2.3-2.5 and 0.3-0.8 ms less). Alpha
    (Pillow premultiplies it), tiny and large images stay with Pillow, which reduces by box first.
    """
    size = _thumbnail_size(image.size, (spec.width, spec.height))
    if size is None:
        return image
    if image.mode in ("L", "RGB") and image.width * image.height in _VIPS_RESIZE_PIXELS:
        bands = len(image.getbands())
        small = pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, bands, "uchar")
        small = small.resize(size[0] / image.width, vscale=size[1] / image.height, kernel="lanczos3")
        if (small.width, small.height) == size:
            out = Image.frombytes(image.mode, size, small.write_to_memory())
            out.info = dict(image.info)
            return out
    image.thumbnail((spec.width, spec.height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def _thumbnail_size(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int] | None:
    """The size ``Image.thumbnail(box)`` gives (Pillow 13's rounding, kept to the aspect); None if none smaller."""
    width, height = size
    x, y = box
    if x >= width and y >= height:
        return None
    aspect = width / height
    if x / y >= aspect:
        x = max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1)
    else:
        y = max(
            min(math.floor(x / aspect), math.ceil(x / aspect), key=lambda n: 0 if n == 0 else abs(aspect - x / n)), 1
        )
    return x, y


def _open(data: bytes, fmt: str, limits: Limits) -> ImageFile.ImageFile:
    """Image.open restricted to one plugin; the decoder's own header is checked against the limit."""
    image = Image.open(io.BytesIO(data), formats=[fmt])
    _check(*image.size, limits)
    return image


def _check(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        raise ImageTooLarge(f"The image is {width} x {height} pixels; the limit is {limits.max_pixels:,}.")


def _fit(width: int, height: int, spec: VariantSpec) -> tuple[int, int]:
    scale = min(spec.width / width, spec.height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _apply(image: Image.Image, step: Transform) -> Image.Image:
    if isinstance(step, Crop):
        box = (step.left, step.top, step.left + step.width, step.top + step.height)
        inside = box[2] <= image.width and box[3] <= image.height
        return image.crop(box) if inside else image  # libavif decoded a track, not the item
    if isinstance(step, Rotate):
        return image.transpose(_ROTATIONS[step.quarter_turns]) if step.quarter_turns else image
    if isinstance(step, Mirror):
        return image.transpose(_MIRRORS[step.axis])
    raise TypeError(step)


def _eight_bit(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return image
    if mode.startswith("I") or mode == "F":
        bits = int(image.info.get("bits", 16 if mode.startswith("I;16") else 8))
        scale = 1 / (1 << max(bits - 8, 0))
        return image.convert("I").point(lambda v: v * scale).convert("L")
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if transparent else "RGB")
    if mode in ("1", "La"):
        return image.convert("L" if mode == "1" else "LA")
    if mode == "LAB":
        return _transform(image, ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")))
    if mode == "CMYK" and image.info.get("icc_profile"):
        converted = _icc_to_srgb(image, image.info["icc_profile"])
        if converted.mode == "RGB":
            return converted
    return image.convert("RGBA" if "A" in mode or "a" in mode else "RGB")


def icc_to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """``_icc_to_srgb`` under ``LOCK``, for pixels libvips decoded."""
    with LOCK:
        return _icc_to_srgb(image, icc)


def _icc_to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Convert with an embedded profile; a broken or mismatched profile is ignored, as libvips does."""
    base = image.convert("RGB") if image.mode == "RGBA" else image
    transform = _to_srgb_from(icc, base.mode)
    if transform is None:
        return image
    converted = ImageCms.applyTransform(base, transform)
    assert converted is not None  # None only when converting in place
    if image.mode == "RGBA":
        converted.putalpha(image.getchannel("A"))
    return converted


@lru_cache(maxsize=16)
def _to_srgb_from(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from an embedded profile to sRGB, built once per profile and mode; None if unusable.

    Building one costs 2.2 ms, applying it to a thumbnail 0.7 (a Display P3 phone photo's
    profile): most photos carry one of a few profiles, so the kernel builds each once.
    Callers hold ``LOCK``: a transform is used by one render at a time.
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != {"RGB": "RGB", "CMYK": "CMYK"}.get(mode):
            return None
        return _srgb_transform(profile, mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def _transform(image: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    converted = ImageCms.applyTransform(image, _srgb_transform(profile, image.mode))
    assert converted is not None  # None only when converting in place
    return converted


def _srgb_transform(profile: ImageCms.ImageCmsProfile, mode: str) -> ImageCms.ImageCmsTransform:
    """To sRGB, relative colorimetric with black point compensation, as the libvips path does."""
    return ImageCms.buildTransform(
        profile,
        _srgb(),
        mode,
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )


@cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
