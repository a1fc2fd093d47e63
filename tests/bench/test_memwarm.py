"""The harness's memory warm-up: bounded by what is free, and the write cost it reports is measured."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from bench import memwarm


def test_the_warm_up_touches_at_most_half_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    available = 64 * 2**20
    monkeypatch.setattr(memwarm.psutil, "virtual_memory", lambda: SimpleNamespace(available=available))
    warmed = memwarm.warm(gigabytes=100)
    assert warmed["gigabytes"] * 2**30 == available / 2


def test_the_warm_up_touches_every_page_it_is_asked_to_when_memory_allows() -> None:
    # In a fresh process, whose peak RSS is its own: every page written once shows in it.
    script = (
        "from bench import memwarm\n"
        "def peak():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
        "before = peak()\n"
        "warmed = memwarm.warm(gigabytes=1 / 16)\n"
        "print(warmed['gigabytes'], (peak() - before) / 2**20)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    gigabytes, grown_gib = (float(v) for v in done.stdout.split())
    assert gigabytes == pytest.approx(1 / 16)
    assert grown_gib >= 0.95 / 16  # 64 MiB written page by page, then freed


def test_the_page_cache_cost_is_reported_for_fresh_and_reused_pages() -> None:
    measured = memwarm.measure(megabytes=16)
    assert measured["megabytes"] == 16
    # CPU milliseconds per MB copied into the page cache: above 20 GB/s or below 20 MB/s would be a unit slip.
    for key in ("fresh_ms_per_mb", "reused_ms_per_mb"):
        assert 0.05 < measured[key] < 50, (key, measured[key])
    line = memwarm.summary(measured, {"gigabytes": 4.0, "seconds": 2.5})
    assert f"{measured['fresh_ms_per_mb']:.2f} CPU ms per MB" in line and "4.0 GiB" in line
