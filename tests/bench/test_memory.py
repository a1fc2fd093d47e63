"""The peak RSS of one render is the kernel process's own, not that of the harness which started it."""

from __future__ import annotations

import mmap
from pathlib import Path

from bench.corpus import Item
from bench.memory import _one
from PIL import Image

MB = 2**20


def test_a_render_reports_its_own_peak_even_after_the_harness_held_far_more(tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    Image.new("RGB", (640, 480), "teal").save(path, quality=90)
    size = 512 * MB
    with mmap.mmap(-1, size) as memory:  # the harness's peak, as bench/memwarm.py leaves it
        memory[:: mmap.PAGESIZE] = b"\x01" * (size // mmap.PAGESIZE)
    item = Item("small", "jpeg-small", str(path), "jpeg", 640, 480, path.stat().st_size, "test")
    result = _one(item)
    assert "error" not in result, result
    # A Python process with the kernel's libraries loaded: tens of MB, nowhere near the harness's 512.
    assert 20 * MB < result["baseline"] <= result["peak"] < 300 * MB
    assert result["growth"] == result["peak"] - result["baseline"]
