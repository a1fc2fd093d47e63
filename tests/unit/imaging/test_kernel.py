"""render(), configure() and library_versions(): targeted cases the corpus does not pin down."""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import pyvips
from PIL import Image, ImageChops, ImageCms, ImageStat

from imgpipe.domain.errors import CorruptImage, ImageTooLarge, ImgpipeError, UnsupportedImage
from imgpipe.imaging import _pil
from imgpipe.imaging.kernel import ROUTES, configure, library_versions, render
from imgpipe.imaging.types import ImageFormat, Limits, Rendered, VariantSpec
from support.corpus import CORPUS, metadata_in

SPEC = VariantSpec()
LIMITS = Limits()


@pytest.fixture(autouse=True)
def _configured(kernel: None) -> None:
    """Every test here runs in a configured kernel."""


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def _decoded(rendered: Rendered) -> Image.Image:
    image = Image.open(io.BytesIO(rendered.data))
    image.load()
    return image


def _mean(image: Image.Image) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(image.convert("RGB")).mean)


def _close(a: tuple[float, ...], b: tuple[float, ...], tolerance: float = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_a_small_image_is_never_upscaled() -> None:
    rendered = render(_encode(Image.new("RGB", (100, 50), (10, 200, 30)), "PNG"), SPEC, LIMITS)
    assert (rendered.width, rendered.height, rendered.content_type) == (100, 50, "image/jpeg")


def test_a_4000_by_3000_photo_fits_in_256_by_192() -> None:
    rendered = render(_encode(Image.new("RGB", (4000, 3000), (90, 120, 200)), "JPEG", quality=90), SPEC, LIMITS)
    assert (rendered.width, rendered.height) == (256, 192)
    assert _close(_mean(_decoded(rendered)), (90, 120, 200), 4)


def test_other_variant_sizes_fit_their_own_box() -> None:
    data = _encode(Image.new("RGB", (4000, 3000), "white"), "JPEG")
    assert render(data, VariantSpec("large", 1024, 1024), LIMITS).width == 1024
    assert render(data, VariantSpec("strip", 300, 50), LIMITS).height == 50


def test_a_65535_by_1_panorama_renders() -> None:
    rendered = render(_encode(Image.new("L", (65_535, 1), 200), "PNG"), SPEC, LIMITS)
    assert (rendered.width, rendered.height) == (256, 1)


def test_the_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(ImageTooLarge):
        render(_encode(Image.new("RGB", (1000, 1000)), "JPEG"), SPEC, Limits(max_pixels=999_999))


# --- metadata ------------------------------------------------------------------------------


def _iptc_segment() -> bytes:
    iptc = b"\x1c\x02\x78\x00\x0bSecret note"  # 2:120 caption
    resource = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    body = b"Photoshop 3.0\x00" + resource
    return b"\xff\xed" + struct.pack(">H", 2 + len(body)) + body


def _tagged_photo() -> tuple[Image.Image, Image.Exif, bytes, bytes]:
    image = Image.new("RGB", (640, 480), (30, 140, 90))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 40.0)})
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><dc:creator>Secret Author</dc:creator></rdf:RDF></x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return image, exif, xmp, icc


_SECRETS = (b"SpyCam", b"Secret Author", b"Secret note", b"ICC_PROFILE", b"Exif\x00\x00", b"Photoshop", b"xmpmeta")


def test_exif_gps_xmp_iptc_icc_and_comments_in_a_jpeg_are_stripped() -> None:
    image, exif, xmp, icc = _tagged_photo()
    data = _encode(image, "JPEG", exif=exif, xmp=xmp, icc_profile=icc, comment=b"Secret note")
    data = data[:2] + _iptc_segment() + data[2:]
    assert all(secret in data for secret in (b"SpyCam", b"Secret Author", b"Photoshop"))
    rendered = render(data, SPEC, LIMITS)
    assert metadata_in(rendered.data) == []
    assert not [secret for secret in _SECRETS if secret in rendered.data]


def test_exif_xmp_and_icc_in_a_png_with_alpha_are_stripped_from_the_webp() -> None:
    image, exif, xmp, icc = _tagged_photo()
    rgba = image.convert("RGBA")
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    data = _encode(rgba, "PNG", exif=exif, icc_profile=icc, pnginfo=_png_text(xmp))
    rendered = render(data, SPEC, LIMITS)
    assert rendered.content_type == "image/webp"
    assert metadata_in(rendered.data) == []
    assert not [secret for secret in _SECRETS if secret in rendered.data]


def test_exif_xmp_and_icc_in_a_webp_are_stripped() -> None:
    image, exif, xmp, icc = _tagged_photo()
    rendered = render(_encode(image, "WEBP", exif=exif, xmp=xmp, icc_profile=icc), SPEC, LIMITS)
    assert metadata_in(rendered.data) == []
    assert not [secret for secret in _SECRETS if secret in rendered.data]


def _png_text(xmp: bytes) -> object:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    info.add_text("Comment", "Secret note", zip=True)
    return info


# --- colour --------------------------------------------------------------------------------


def test_a_cmyk_jpeg_comes_out_as_an_srgb_jpeg() -> None:
    rendered = render((CORPUS / "formats/jpeg/pil_sample_cmyk.jpg").read_bytes(), SPEC, LIMITS)
    image = _decoded(rendered)
    assert (rendered.content_type, image.mode) == ("image/jpeg", "RGB")
    assert b"Adobe" not in rendered.data and b"ICC_PROFILE" not in rendered.data


def test_cmyk_without_ink_is_white_and_full_ink_is_black() -> None:
    paper = render(_encode(Image.new("CMYK", (64, 64), (0, 0, 0, 0)), "JPEG"), SPEC, LIMITS)
    ink = render(_encode(Image.new("CMYK", (64, 64), (255, 255, 255, 255)), "JPEG"), SPEC, LIMITS)
    assert min(_mean(_decoded(paper))) > 240
    assert max(_mean(_decoded(ink))) < 25  # black point compensation: no print-paper grey


def test_a_16_bit_rgb_png_is_rendered_in_8_bit() -> None:
    pixels = (pyvips.Image.black(64, 64, bands=3) + [65535, 32768, 0]).cast("ushort")
    data = pixels.copy(interpretation="rgb16").pngsave_buffer()
    rendered = render(bytes(data), SPEC, LIMITS)
    assert _close(_mean(_decoded(rendered)), (255, 128, 0), 6)


def test_a_16_bit_grey_png_keeps_its_tones() -> None:
    rendered = render((CORPUS / "formats/png/gradient_gray16.png").read_bytes(), SPEC, LIMITS)
    low, high = _decoded(rendered).convert("L").getextrema()
    assert isinstance(low, int) and isinstance(high, int)
    assert low < 10 and high > 245


def test_an_embedded_wide_gamut_profile_is_applied() -> None:
    with Image.open(CORPUS / "formats/jpeg/landscape_displayp3.jpg") as original:
        p3 = original.info["icc_profile"]
    colour = Image.new("RGB", (64, 64), (40, 200, 60))
    plain = _mean(_decoded(render(_encode(colour, "JPEG", quality=95), SPEC, LIMITS)))
    tagged = _mean(_decoded(render(_encode(colour, "JPEG", quality=95, icc_profile=p3), SPEC, LIMITS)))
    assert _close(plain, (40, 200, 60), 4)
    assert not _close(plain, tagged, 4)  # the same numbers are a more saturated green in Display P3


# --- alpha and animation -------------------------------------------------------------------


def test_transparency_gives_a_webp_with_an_alpha_channel() -> None:
    image = Image.new("RGBA", (300, 300), (200, 30, 30, 255))
    image.paste((0, 0, 0, 0), (0, 0, 150, 300))
    rendered = render(_encode(image, "PNG"), SPEC, LIMITS)
    out = _decoded(rendered)
    assert (rendered.content_type, out.mode) == ("image/webp", "RGBA")
    assert out.getchannel("A").getextrema() == (0, 255)


def test_an_alpha_channel_that_is_fully_opaque_gives_a_jpeg() -> None:
    rendered = render(_encode(Image.new("RGBA", (300, 300), (200, 30, 30, 255)), "PNG"), SPEC, LIMITS)
    assert rendered.content_type == "image/jpeg"


def test_an_animated_gif_with_3000_frames_renders_its_first_frame() -> None:
    frames = [Image.new("P", (32, 32), 0)] + [Image.new("P", (32, 32), 1 + i % 2) for i in range(2999)]
    for frame in frames:
        frame.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0] + [0] * 759)
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=10, loop=0, optimize=False)
    rendered = render(buf.getvalue(), SPEC, LIMITS)
    assert _close(_mean(_decoded(rendered)), (255, 0, 0), 10)


def test_an_animated_webp_renders_its_first_frame() -> None:
    frames = [Image.new("RGB", (64, 64), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50, lossless=True)
    assert _close(_mean(_decoded(render(data, SPEC, LIMITS))), (255, 0, 0), 10)


def test_a_large_enough_embedded_heic_thumbnail_is_used_and_looks_like_the_image() -> None:
    data = (CORPUS / "formats/heic/zPug_3_multi.heic").read_bytes()
    small = _decoded(render(data, VariantSpec("tiny", 16, 16), LIMITS))
    full = _decoded(render(data, SPEC, LIMITS)).resize((16, 16), Image.Resampling.BOX)
    assert small.size == (16, 16)
    assert _close(_mean(small), _mean(full), 10)


# --- hostile input -------------------------------------------------------------------------

HALF_UPLOADS = [
    "formats/jpeg/flower2.jpg",
    "formats/jpeg/flower_progressive.jpg",
    "formats/png/transparent.png",
    "formats/webp/hopper_lossy.webp",
    "formats/gif/hopper.gif",
    "formats/tiff/hopper_lzw.tif",
    "formats/bmp/hopper.bmp",
    "formats/mislabeled/heic_named.jpg",
    "formats/avif/hopper.avif",
]


@pytest.mark.parametrize("path", HALF_UPLOADS)
def test_a_half_upload_is_corrupt_not_a_half_grey_image(path: str) -> None:
    data = (CORPUS / path).read_bytes()
    with pytest.raises(CorruptImage):
        render(data[: len(data) * 6 // 10], SPEC, LIMITS)


@pytest.mark.parametrize("path", HALF_UPLOADS)
def test_damaged_bytes_end_in_a_result_or_a_domain_error_never_a_raw_exception(path: str) -> None:
    data = (CORPUS / path).read_bytes()
    rng = random.Random(path)
    for _ in range(12):
        damaged = bytearray(data)
        for _ in range(8):
            damaged[rng.randrange(16, len(data))] = rng.randrange(256)
        try:
            rendered = render(bytes(damaged), SPEC, LIMITS)
        except ImgpipeError:
            continue
        assert rendered.width <= SPEC.width and rendered.height <= SPEC.height
        assert metadata_in(rendered.data) == []


def test_a_heic_whose_only_image_lost_its_decoder_configuration_is_corrupt() -> None:
    data = (CORPUS / "formats/heic/L_exif_xmp_iptc.heic").read_bytes().replace(b"hvcC", b"hvcF")
    with pytest.raises(CorruptImage):
        render(data, SPEC, LIMITS)


def test_svg_never_reaches_a_decoder() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'
    with pytest.raises(UnsupportedImage):
        render(svg, SPEC, LIMITS)


def test_configure_locks_libvips_down_to_five_loaders() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(svg, "")
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(b"1 2 3\n4 5 6\n", "")  # csv / matrix
    with pytest.raises(pyvips.Error):  # HEIF goes through pillow-heif, AVIF through Pillow
        pyvips.Image.new_from_buffer((CORPUS / "formats/avif/hopper.avif").read_bytes(), "")
    assert pyvips.Image.new_from_buffer((CORPUS / "formats/jpeg/flower2.jpg").read_bytes(), "").width == 300


# --- configuration and diagnostics ---------------------------------------------------------


def test_renders_on_several_threads_at_once_agree_with_renders_one_at_a_time() -> None:
    # The embedded mode runs the kernel on worker threads rather than in child processes.
    paths = ["formats/jpeg/flower2.jpg", "formats/avif/hopper.avif", "formats/heic/RGB_8_chroma444.heif",
             "formats/bmp/hopper.bmp", "formats/tiff/hopper.Lab.tif", "formats/png/transparent.png"]  # fmt: skip
    originals = [(CORPUS / path).read_bytes() for path in paths]
    alone = [render(data, SPEC, LIMITS) for data in originals]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda data: render(data, SPEC, LIMITS), originals * 4))
    assert together == alone * 4


def test_configure_is_idempotent() -> None:
    data = _encode(Image.new("RGB", (500, 400), "navy"), "JPEG")
    first = render(data, SPEC, LIMITS)
    configure(threads=1)
    configure(threads=1)
    assert render(data, SPEC, LIMITS) == first
    assert pyvips.cache_get_max() == 0


def test_importing_the_kernel_configures_nothing_and_render_configures_itself() -> None:
    code = (
        "import sys, pyvips, imgpipe.imaging.kernel as k, imgpipe.imaging.types as t;"
        "before = pyvips.cache_get_max();"
        "out = k.render(open(sys.argv[1], 'rb').read(), t.VariantSpec(), t.Limits());"
        "sys.exit(0 if before > 0 and pyvips.cache_get_max() == 0 and out.width == 256 else 1)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(CORPUS / "formats/jpeg/flower2.jpg")], check=False)
    assert done.returncode == 0


def test_library_versions_name_every_library_and_the_decoder_of_every_format() -> None:
    versions = library_versions()
    for key in ("libvips", "pyvips", "pillow", "pillow-heif", "libheif", "libavif (Pillow)"):
        assert versions[key] and versions[key] != "missing", key
    assert {f"decoder {fmt.value}" for fmt in ImageFormat} <= versions.keys()
    assert set(ROUTES) == set(ImageFormat)


@contextmanager
def _counting_transforms() -> Iterator[list[str]]:
    """Every colour transform LCMS builds meanwhile, from an empty cache."""
    built: list[str] = []
    real_init = ImageCms.ImageCmsTransform.__init__

    def counting(self: ImageCms.ImageCmsTransform, *args: Any, **kwargs: Any) -> None:
        built.append("transform")
        real_init(self, *args, **kwargs)

    _pil._to_srgb_from.cache_clear()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ImageCms.ImageCmsTransform, "__init__", counting)
        yield built


def test_a_colour_profile_is_turned_into_a_transform_once_and_converts_as_lcms_does() -> None:
    with Image.open(CORPUS / "formats/jpeg/landscape_displayp3.jpg") as source:
        icc = source.info["icc_profile"]
        photo = source.convert("RGB").resize((1024, 768))
    data = _encode(photo, "JPEG", quality=95, icc_profile=icc)
    with _counting_transforms() as built:
        first, second = render(data, SPEC, LIMITS), render(data, SPEC, LIMITS)
    assert first.data == second.data and built == ["transform"]  # the second render reused it

    # The same pixels as a one-off LCMS conversion of the decoded, fitted image.
    fitted = Image.open(io.BytesIO(data))
    fitted.draft("RGB", (256, 192))
    fitted = fitted.convert("RGB")
    fitted.thumbnail((256, 256), Image.Resampling.LANCZOS, reducing_gap=3.0)
    expected = ImageCms.profileToProfile(
        fitted,
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )
    assert expected is not None
    assert _close(_mean(_decoded(first)), _mean(expected), tolerance=1.5)
    assert not _close(_mean(_decoded(first)), _mean(fitted), tolerance=1.5)  # the profile did change it


def test_libvips_decoded_images_use_the_same_cached_transform_and_match_libvips_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Image.open(CORPUS / "formats/jpeg/landscape_displayp3.jpg") as source:
        icc = source.info["icc_profile"]
        photo = source.convert("RGB").resize((1024, 768))
    png, webp = _encode(photo, "PNG", icc_profile=icc), _encode(photo, "WEBP", quality=95, icc_profile=icc)
    with _counting_transforms() as built:
        cached = [_decoded(render(data, SPEC, LIMITS)) for data in (png, webp, png)]
    assert built == ["transform"]  # one profile, one transform, whichever decoder
    with monkeypatch.context() as m:
        m.setattr(_pil, "icc_to_srgb", lambda image, icc: image)  # Pillow declines: libvips converts
        by_libvips = _decoded(render(png, SPEC, LIMITS))
    assert _close(_mean(cached[0]), _mean(by_libvips), tolerance=1.0)
    assert _close(_mean(cached[1]), _mean(by_libvips), tolerance=2.0)
    unconverted = photo.resize(by_libvips.size)
    assert not _close(_mean(by_libvips), _mean(unconverted), tolerance=1.0)  # the profile matters here


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_a_broken_profile_on_a_libvips_decoded_image_is_ignored(fmt: str) -> None:
    # WebP keeps the bytes, Pillow's LCMS refuses them and libvips' fallback ignores them; libpng
    # drops an invalid iCCP while loading, so the PNG case shows only that the load survives it.
    photo = Image.new("RGB", (800, 600), (200, 120, 40))
    made = _decoded(render(_encode(photo, fmt, icc_profile=b"not an ICC profile at all" * 8), SPEC, LIMITS))
    assert made.size == (256, 192) and _close(_mean(made), (200, 120, 40), tolerance=3)


@pytest.mark.parametrize(("mode", "size"), [("RGB", (750, 500)), ("L", (500, 375)), ("RGB", (333, 1000))])
def test_a_small_opaque_image_is_resized_by_libvips_to_pillows_size_and_look(
    mode: str, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Image.open(CORPUS / "formats/jpeg/flower2.jpg") as source:
        image = source.convert(mode).resize(size, Image.Resampling.BICUBIC)
    by_pillow = image.copy()
    by_pillow.thumbnail((256, 256), Image.Resampling.LANCZOS, reducing_gap=3.0)
    resized: list[tuple[int, int]] = []
    real_resize = pyvips.Image.resize

    def spy(self: pyvips.Image, *args: Any, **kwargs: Any) -> pyvips.Image:
        resized.append((self.width, self.height))
        return real_resize(self, *args, **kwargs)

    monkeypatch.setattr(pyvips.Image, "resize", spy)
    made = _pil.fit_to_srgb(image, SPEC)
    assert resized == [size]
    assert (made.mode, made.size) == (mode, by_pillow.size)
    assert _close(_mean(made), _mean(by_pillow), tolerance=1.0)
    # The same filter in two implementations: 0.2 apart on average (a bilinear resize is 1-2.4 from either).
    difference = ImageChops.difference(made, by_pillow)
    assert max(ImageStat.Stat(difference).mean) < 0.5
    assert max(high for _, high in ImageStat.Stat(difference).extrema) <= 8


def test_alpha_tiny_and_large_images_are_resized_by_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pyvips.Image, "resize", lambda *a, **k: pytest.fail("libvips resized it"))
    assert _pil.fit_to_srgb(Image.new("RGBA", (800, 600), (1, 2, 3, 128)), SPEC).size == (256, 192)
    assert _pil.fit_to_srgb(Image.new("RGB", (3000, 2000), "white"), SPEC).size == (256, 171)
    assert _pil.fit_to_srgb(Image.new("RGB", (320, 200), "white"), SPEC).size == (256, 160)  # a 4 MP draft
