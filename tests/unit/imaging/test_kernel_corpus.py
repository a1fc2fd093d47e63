"""render() over every file of the corpus: each ends as the manifest's ``expected`` column says."""

from __future__ import annotations

import pytest

from imgpipe.domain.errors import CorruptImage, EmptyUpload, ImageTooLarge, UnsupportedImage
from imgpipe.imaging.kernel import render
from support.corpus import LIMITS, SPEC, Row, assert_clean_thumbnail, assert_upright_and_faithful, rows


@pytest.fixture(autouse=True)
def _configured(kernel: None) -> None:
    """Every test here runs in a configured kernel."""


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
        assert_clean_thumbnail(rendered)
    else:
        assert_upright_and_faithful(row, render(data, SPEC, LIMITS))
