"""Still WebP images through libwebp's own scaled decode: straight to the fitted size, in one pass.

libvips' webpload takes 40-60 % longer than libwebp's ``WebPDecode`` with the same
scaling on the photographs in ``bench/`` (51 against 36 ms at 4 MP). The libwebp
called here is the one Pillow ships and has loaded already (found by its path in
``/proc/self/maps``), bound with ctypes to the structures of ``webp/decode.h``; the
decoder ABI's major version is checked before any call.

Anything else returns None and the image goes to libvips as before: no libwebp found,
another ABI, an animation (libvips renders its first frame), a feature libwebp does
not decode this way. Data libwebp finds corrupt is CorruptImage, as libvips' is.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from imgpipe.domain.errors import CorruptImage

__all__ = ["Fitted", "decode_fitted", "library"]

_ABI = 0x0209  # WEBP_DECODER_ABI_VERSION; its major byte must match the library's
_MODE_RGB, _MODE_PREMULTIPLIED_RGBA = 0, 7  # WEBP_CSP_MODE: MODE_RGB, MODE_rgbA
_OK, _BITSTREAM_ERROR, _NOT_ENOUGH_DATA = 0, 3, 7  # VP8StatusCode
_LIBRARY = re.compile(r"libwebp(-[0-9a-f]+)?\.so(\.\d+)*")


class _Features(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("has_alpha", ctypes.c_int),
        ("has_animation", ctypes.c_int),
        ("format", ctypes.c_int),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _RGBABuffer(ctypes.Structure):
    _fields_ = [("rgba", ctypes.c_void_p), ("stride", ctypes.c_int), ("size", ctypes.c_size_t)]


class _YUVABuffer(ctypes.Structure):
    _fields_ = [
        *((name, ctypes.c_void_p) for name in ("y", "u", "v", "a")),
        *((name, ctypes.c_int) for name in ("y_stride", "u_stride", "v_stride", "a_stride")),
        *((name, ctypes.c_size_t) for name in ("y_size", "u_size", "v_size", "a_size")),
    ]


class _Planes(ctypes.Union):
    _fields_ = [("RGBA", _RGBABuffer), ("YUVA", _YUVABuffer)]


class _DecBuffer(ctypes.Structure):
    _fields_ = [
        ("colorspace", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("is_external_memory", ctypes.c_int),
        ("u", _Planes),
        ("pad", ctypes.c_uint32 * 4),
        ("private_memory", ctypes.c_void_p),
    ]


class _Options(ctypes.Structure):
    _fields_ = [
        *(
            (name, ctypes.c_int)
            for name in (
                "bypass_filtering",
                "no_fancy_upsampling",
                "use_cropping",
                "crop_left",
                "crop_top",
                "crop_width",
                "crop_height",
                "use_scaling",
                "scaled_width",
                "scaled_height",
                "use_threads",
                "dithering_strength",
                "flip",
                "alpha_dithering_strength",
            )
        ),
        ("pad", ctypes.c_uint32 * 5),
    ]


class _Config(ctypes.Structure):
    _fields_ = [("input", _Features), ("output", _DecBuffer), ("options", _Options)]


@dataclass(frozen=True)
class Fitted:
    """8-bit pixels at the fitted size: RGB, or RGBA premultiplied by its alpha; the ICC profile if any."""

    pixels: bytes
    width: int
    height: int
    bands: int
    icc: bytes | None


@cache
def library() -> ctypes.CDLL | None:
    """Pillow's libwebp with its decoder functions typed, or None when it cannot be found or has another ABI."""
    try:
        from PIL import _webp  # noqa: F401  (loads libwebp into this process)

        maps = Path("/proc/self/maps").read_text()
    except (ImportError, OSError):
        return None
    paths = {line.split(maxsplit=5)[-1] for line in maps.splitlines() if line.count(" ") >= 5}
    found = sorted(p for p in paths if _LIBRARY.fullmatch(Path(p).name))
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    lib.WebPInitDecoderConfigInternal.argtypes = [ctypes.POINTER(_Config), ctypes.c_int]
    lib.WebPGetFeaturesInternal.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Features), ctypes.c_int]
    lib.WebPDecode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Config)]
    lib.WebPFreeDecBuffer.argtypes = [ctypes.POINTER(_DecBuffer)]
    lib.WebPFreeDecBuffer.restype = None
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(_Config()), _ABI):
        return None  # another major ABI: the structures above would not match
    return lib


def decode_fitted(data: bytes, box_width: int, box_height: int) -> Fitted | None:
    """The still image in ``data`` decoded to fit the box (never enlarged); None to leave it to libvips."""
    lib = library()
    if lib is None:
        return None
    config = _Config()
    if not lib.WebPInitDecoderConfigInternal(ctypes.byref(config), _ABI):
        return None
    if lib.WebPGetFeaturesInternal(data, len(data), ctypes.byref(config.input), _ABI) != _OK:
        return None
    features = config.input
    if features.has_animation or features.width <= 0 or features.height <= 0:
        return None
    scale = min(box_width / features.width, box_height / features.height, 1.0)
    width, height = max(1, round(features.width * scale)), max(1, round(features.height * scale))
    bands = 4 if features.has_alpha else 3
    pixels = ctypes.create_string_buffer(width * height * bands)
    config.output.colorspace = _MODE_PREMULTIPLIED_RGBA if features.has_alpha else _MODE_RGB
    config.output.is_external_memory = 1
    config.output.u.RGBA.rgba = ctypes.cast(pixels, ctypes.c_void_p)
    config.output.u.RGBA.stride = width * bands
    config.output.u.RGBA.size = len(pixels)
    if (width, height) != (features.width, features.height):
        config.options.use_scaling = 1
        config.options.scaled_width, config.options.scaled_height = width, height
    status = lib.WebPDecode(data, len(data), ctypes.byref(config))
    lib.WebPFreeDecBuffer(ctypes.byref(config.output))
    if status in (_BITSTREAM_ERROR, _NOT_ENOUGH_DATA):
        raise CorruptImage()
    if status != _OK or (config.output.width, config.output.height) != (width, height):
        return None
    return Fitted(pixels.raw, width, height, bands, _icc_profile(data))


def _icc_profile(data: bytes) -> bytes | None:
    """The ICCP chunk of an extended (VP8X) WebP: the spec puts it right after VP8X, before the image."""
    if len(data) < 30 or data[12:16] != b"VP8X" or not data[20] & 0x20:  # the VP8X flag for an ICC profile
        return None
    pos = 30  # past RIFF, WEBP and the 18-byte VP8X chunk
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == b"ICCP":
            return data[pos + 8 : pos + 8 + size] or None
        if kind in (b"VP8 ", b"VP8L", b"ANMF", b"ALPH"):
            return None
        pos += 8 + size + (size & 1)
    return None
