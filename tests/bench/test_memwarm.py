"""The harness's memory warm-up: bounded by what is free, and the write cost it reports is measured."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import memwarm


def test_the_warm_up_touches_at_most_half_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    available = 64 * 2**20
    monkeypatch.setattr(memwarm.psutil, "virtual_memory", lambda: SimpleNamespace(available=available))
    warmed = memwarm.warm(gigabytes=100)
    assert warmed["gigabytes"] * 2**30 == available / 2


def test_the_warm_up_touches_what_it_is_asked_when_memory_allows() -> None:
    assert memwarm.warm(gigabytes=1 / 64)["gigabytes"] == pytest.approx(1 / 64)


def test_the_page_cache_cost_is_reported_for_fresh_and_reused_pages() -> None:
    measured = memwarm.measure(megabytes=16)
    assert measured["megabytes"] == 16
    assert measured["fresh_ms_per_mb"] > 0 and measured["reused_ms_per_mb"] > 0
    line = memwarm.summary(measured, {"gigabytes": 4.0, "seconds": 2.5})
    assert f"{measured['fresh_ms_per_mb']:.2f} CPU ms per MB" in line and "4.0 GiB" in line
