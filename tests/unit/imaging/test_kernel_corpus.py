"""render() over every file of the corpus: each ends as the manifest's ``expected`` column says."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from imgpipe.domain.errors import CorruptImage, EmptyUpload, ImageTooLarge, UnsupportedImage
from imgpipe.imaging.kernel import render
from imgpipe.imaging.probe import probe_bytes
from imgpipe.imaging.types import Limits, Rendered, VariantSpec

from .corpus import TRANSFORMS, Row, compare, metadata_in, reference, rows

SPEC = VariantSpec()  # the 256 x 256 thumbnail
LIMITS = Limits()

# Mean absolute difference (0-255, compared at <= 32 px) to an independent decode made
# upright by hand. Correct renders measure 0.5-8 on this corpus; a wrong orientation
# measures 35-60 and an ignored wide-gamut profile 2-50 (checked separately).
MAX_DIFFERENCE = 10.0


@pytest.fixture(autouse=True)
def _configured(kernel: None) -> None:
    """Every test here runs in a configured kernel."""


def _decoded(rendered: Rendered) -> Image.Image:
    image = Image.open(io.BytesIO(rendered.data))
    image.load()
    assert image.size == (rendered.width, rendered.height)
    assert image.format == {"image/jpeg": "JPEG", "image/webp": "WEBP"}[rendered.content_type]
    return image


def _assert_a_clean_thumbnail(rendered: Rendered) -> Image.Image:
    image = _decoded(rendered)
    assert 1 <= rendered.width <= SPEC.width and 1 <= rendered.height <= SPEC.height
    assert metadata_in(rendered.data) == []
    if rendered.content_type == "image/webp":
        assert image.mode == "RGBA", "WebP is only chosen to keep an alpha channel"
    return image


@pytest.mark.parametrize("row", rows(), ids=lambda r: r.path)
def test_every_corpus_file_ends_as_the_manifest_expects(row: Row) -> None:
    data = row.read()
    if row.expected == "reject-empty":
        with pytest.raises(EmptyUpload):
            render(data, SPEC, LIMITS)
    elif row.expected == "reject-bomb":
        with pytest.raises(ImageTooLarge):
            render(data, SPEC, LIMITS)
    elif row.expected == "reject-corrupt":
        with pytest.raises(CorruptImage if row.accepted else (CorruptImage, UnsupportedImage)):
            render(data, SPEC, LIMITS)
    elif row.expected == "ok-or-reject-corrupt":
        try:
            rendered = render(data, SPEC, LIMITS)
        except CorruptImage:
            return
        _assert_a_clean_thumbnail(rendered)
    else:
        _assert_upright_and_faithful(row, render(data, SPEC, LIMITS))


def _assert_upright_and_faithful(row: Row, rendered: Rendered) -> None:
    image = _assert_a_clean_thumbnail(rendered)
    ref = reference(row)
    assert ref is not None, "every ok row has an independent decoder"
    upright = ref.upright()

    # Fits the box with the original's aspect ratio, and is never upscaled.
    width, height = ref.upright_size
    scale = min(SPEC.width / width, SPEC.height / height, 1.0)
    assert abs(rendered.width - width * scale) <= 1
    assert abs(rendered.height - height * scale) <= 1
    # The size the API reports for the original is the one the thumbnail shows.
    info = probe_bytes(row.read(), LIMITS)
    shown = min(SPEC.width / info.width, SPEC.height / info.height, 1.0)
    assert abs(rendered.width - info.width * shown) <= 1 and abs(rendered.height - info.height * shown) <= 1

    # Transparency survives as WebP alpha; opaque images become JPEG.
    lowest_alpha, _ = upright.getchannel("A").getextrema()
    assert isinstance(lowest_alpha, int)
    has_alpha = lowest_alpha < 255
    assert rendered.content_type == ("image/webp" if has_alpha else "image/jpeg")

    # Looks like the original made upright...
    difference = compare(image, upright)
    assert difference <= MAX_DIFFERENCE
    # ...and, when it had to be turned, not like any other orientation of it.
    if row.expected in TRANSFORMS and row.expected != "ok" and min(upright.size) >= 8:
        for other in TRANSFORMS:
            wrong = ref.upright(other)
            if other == row.expected or compare(upright, wrong) < 5:
                continue  # symmetric content: that orientation looks the same
            assert difference < compare(image, wrong), f"looks more like {other}"
    # Colour-managed: closer to the profile-honouring decode than to one that ignores it.
    raw = ref.upright(honour_icc=False)
    if compare(raw, upright) > 1.0:
        assert difference < compare(image, raw), "the ICC profile was ignored"
