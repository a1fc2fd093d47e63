"""The targets table: a figure that misses never reads as one that passes."""

from __future__ import annotations

from bench.targets import judge


def _vipsthumbnail_row(kernel_ms: dict[str, float]) -> tuple[str, str]:
    single = {cls: {"imgpipe": ms, "vipsthumbnail": 100.0} for cls, ms in kernel_ms.items()}
    (row,) = [t for t in judge({"kernel": {"single_ms": single}}) if "vipsthumbnail" in t.what]
    return row.measured, row.verdict


def test_a_miss_within_the_rounding_shows_the_digits_that_make_it_one() -> None:
    classes = ["jpeg-base-4mp", "jpeg-base-12mp", "jpeg-base-24mp", "png-rgb", "png-rgba"]
    measured, verdict = _vipsthumbnail_row({**dict.fromkeys(classes, 20.0), "png-rgba": 35.06})
    assert verdict == "MISS"
    assert "png-rgba: 0.351" in measured  # not "0.35", which is within the target of 0.35x
    assert "png-rgb: 0.20," in measured  # the others keep two decimals

    measured, verdict = _vipsthumbnail_row({**dict.fromkeys(classes, 20.0), "png-rgba": 34.96})
    assert verdict == "PASS" and measured.endswith("png-rgba: 0.35")
