"""The harness's memory warm-up: bounded by what is free, and the write cost it reports is measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
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


def _device(root: Path, name: str, kind: str, features: str) -> None:
    (root / name).mkdir()
    (root / name / "device").write_text(kind + "\n")
    (root / name / "features").write_text(features + "\n")


def test_free_page_reporting_is_read_from_the_balloons_feature_bits(tmp_path: Path) -> None:
    _device(tmp_path, "virtio1", "0x0002", "0010011" + "0" * 57)  # a disk: its bit 5 means something else
    assert not memwarm.free_page_reporting(tmp_path)
    _device(tmp_path, "virtio0", "0x0005", "0110000" + "0" * 57)  # a balloon without reporting (bit 5)
    assert not memwarm.free_page_reporting(tmp_path)
    (tmp_path / "virtio0" / "features").write_text("0110010" + "0" * 57 + "\n")  # this project's VM: bit 5 set
    assert memwarm.free_page_reporting(tmp_path)
    assert not memwarm.free_page_reporting(tmp_path / "none")  # no virtio bus at all


def test_the_machine_line_says_when_the_host_takes_freed_memory_back() -> None:
    measured = {"fresh_ms_per_mb": 1.0, "reused_ms_per_mb": 0.5, "megabytes": 16}
    plain = memwarm.summary(measured, {"gigabytes": 4.0, "seconds": 10.0})
    assert "free page reporting" not in plain
    reported = memwarm.summary(measured, {"gigabytes": 4.0, "seconds": 10.0, "reporting": True})
    assert reported.startswith(plain) and "free page reporting" in reported
