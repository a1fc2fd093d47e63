"""Still WebPs through libwebp's scaled decode: the same thumbnails as libvips' route, or libvips' route itself."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image, ImageStat

from imgpipe.domain.errors import CorruptImage
from imgpipe.imaging import _libwebp
from imgpipe.imaging.kernel import library_versions, render
from imgpipe.imaging.types import Limits, Rendered, VariantSpec
from support.corpus import CORPUS

SPEC = VariantSpec()
WEBP = CORPUS / "formats/webp"


@pytest.fixture(autouse=True)
def _configured(kernel: None) -> None:
    """Every test here runs in a configured kernel."""


@pytest.fixture
def via_libvips(monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes], Rendered]:
    """The kernel as it renders WebP without the libwebp route."""

    def rendered(data: bytes) -> Rendered:
        with monkeypatch.context() as m:
            m.setattr(_libwebp, "decode_fitted", lambda *args: None)
            return render(data, SPEC, Limits())

    return rendered


def _pixels(rendered: Rendered) -> Image.Image:
    image = Image.open(io.BytesIO(rendered.data))
    image.load()
    return image


def _difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0-255."""
    from PIL import ImageChops

    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


def _webp(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", **params)
    return out.getvalue()


def test_pillows_libwebp_is_found_and_named_by_doctor() -> None:
    assert _libwebp.library() is not None
    versions = library_versions()
    assert "libwebp's scaled decode" in versions["decoder webp"] and versions["libwebp scaled decode"] == "bound"


@pytest.mark.parametrize(
    "name",
    [
        "flower2_icc_exif_xmp.webp",
        "hopper_lossless.webp",
        "hopper_lossy.webp",
        "transparent_lossy_alpha.webp",
        "star_lossless_alpha.webp",
    ],
)
def test_still_webps_render_as_through_libvips(name: str, via_libvips: Callable[[bytes], Rendered]) -> None:
    data = (WEBP / name).read_bytes()
    assert _libwebp.decode_fitted(data, 256, 256) is not None  # this route is the one taken
    direct, reference = render(data, SPEC, Limits()), via_libvips(data)
    assert (direct.content_type, direct.width, direct.height) == (
        reference.content_type,
        reference.width,
        reference.height,
    )
    a, b = _pixels(direct), _pixels(reference)
    assert a.mode == b.mode
    # Two resamplers (libwebp's area average, libvips' Lanczos) and two lossy encodes: close, not equal.
    assert _difference(a.convert("RGBA"), b.convert("RGBA")) < 6


def test_a_large_photo_is_decoded_straight_to_the_fitted_size(via_libvips: Callable[[bytes], Rendered]) -> None:
    with Image.open(CORPUS / "formats/jpeg/flower2.jpg") as source:
        photo = source.convert("RGB").resize((2400, 1600), Image.Resampling.BICUBIC)
    data = _webp(photo, quality=80)
    fitted = _libwebp.decode_fitted(data, 256, 256)
    assert fitted is not None and (fitted.width, fitted.height, fitted.bands) == (256, 171, 3)
    assert _difference(_pixels(render(data, SPEC, Limits())), _pixels(via_libvips(data))) < 3


@pytest.mark.parametrize(
    "params", [{"lossless": True, "exact": True}, {"quality": 90, "exact": True}], ids=["lossless", "lossy"]
)
def test_alpha_is_resampled_premultiplied_so_hidden_colour_does_not_bleed(params: dict[str, object]) -> None:
    # Opaque red on the left; on the right, fully transparent pixels whose hidden colour is green.
    image = Image.new("RGBA", (1200, 800), (255, 0, 0, 255))
    image.paste((0, 255, 0, 0), (600, 0, 1200, 800))
    data = _webp(image, **params)
    assert _libwebp.decode_fitted(data, 256, 256) is not None
    made = _pixels(render(data, SPEC, Limits()))
    assert made.mode == "RGBA" and made.size == (256, 171)
    edge = [made.getpixel((x, 85)) for x in range(120, 136)]
    opaque = [p for p in edge if p[3] > 64]
    assert opaque and all(p[1] < 40 for p in opaque)  # no green fringe where red meets transparent


def test_the_icc_profile_is_applied_as_libvips_does(via_libvips: Callable[[bytes], Rendered]) -> None:
    with Image.open(CORPUS / "formats/jpeg/landscape_adobergb_compat.jpg") as adobe:
        profile = adobe.info["icc_profile"]
        data = _webp(adobe.convert("RGB"), quality=90, icc_profile=profile)
    fitted = _libwebp.decode_fitted(data, 256, 256)
    assert fitted is not None and fitted.icc == profile
    direct, reference = _pixels(render(data, SPEC, Limits())), _pixels(via_libvips(data))
    assert _difference(direct, reference) < 6
    unconverted = Image.open(io.BytesIO(data)).convert("RGB").resize(direct.size)
    assert _difference(direct, unconverted) > _difference(direct, reference)  # the profile did change the colours


def test_orientation_turns_the_fitted_image(via_libvips: Callable[[bytes], Rendered]) -> None:
    for path in sorted(CORPUS.glob("exif-orientation/**/*.webp"))[:8]:
        data = path.read_bytes()
        direct, reference = render(data, SPEC, Limits()), via_libvips(data)
        assert (direct.width, direct.height) == (reference.width, reference.height), path.name
        assert _difference(_pixels(direct).convert("RGB"), _pixels(reference).convert("RGB")) < 8, path.name


def test_animations_and_unknown_libraries_go_to_libvips(monkeypatch: pytest.MonkeyPatch) -> None:
    animated = (WEBP / "iss634_animated.webp").read_bytes()
    assert _libwebp.decode_fitted(animated, 256, 256) is None
    assert render(animated, SPEC, Limits()).width > 0  # its first frame, through libvips
    still = (WEBP / "hopper_lossy.webp").read_bytes()
    monkeypatch.setattr(_libwebp, "library", lambda: None)
    assert _libwebp.decode_fitted(still, 256, 256) is None
    assert render(still, SPEC, Limits()).width == 128


def test_a_bitstream_cut_short_in_a_consistent_container_is_corrupt() -> None:
    data = (WEBP / "hopper_lossy.webp").read_bytes()
    assert data[12:16] == b"VP8 "
    kept = int.from_bytes(data[16:20], "little") * 6 // 10  # the VP8 data cut, every size field made to agree
    cut = b"RIFF" + (12 + kept).to_bytes(4, "little") + b"WEBPVP8 " + kept.to_bytes(4, "little") + data[20 : 20 + kept]
    with pytest.raises(CorruptImage):
        _libwebp.decode_fitted(cut, 256, 256)
    with pytest.raises(CorruptImage):
        render(cut, SPEC, Limits())
