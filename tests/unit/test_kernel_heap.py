"""A kernel process hands the heap a big render grew back to the system, after the reply, and only then."""

from __future__ import annotations

import io

import psutil
from PIL import Image

from imgpipe.imaging.types import Limits, VariantSpec
from imgpipe.worker.kernel_child import TRIM_ABOVE, _heap_trimmer, release_heap
from imgpipe.worker.kernel_pool import ProcessKernel

MB = 2**20


def test_the_heap_is_trimmed_only_after_a_render_that_left_the_process_above_the_threshold() -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    assert not release_heap(TRIM_ABOVE, TRIM_ABOVE, trim)
    assert calls == []
    assert release_heap(TRIM_ABOVE + 1, TRIM_ABOVE, trim)
    assert calls == [0]  # everything free, no padding kept
    assert not release_heap(TRIM_ABOVE * 4, TRIM_ABOVE, None)  # a C library without malloc_trim


def test_glibcs_malloc_trim_is_found_and_runs() -> None:
    trim = _heap_trimmer()
    assert trim is not None
    assert trim(0) in (0, 1)


def _png(size: tuple[int, int]) -> bytes:
    bands = [Image.effect_noise(size, 40).point(lambda v, k=k: (v + 80 * k) % 256) for k in range(3)]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "PNG", compress_level=1)
    return out.getvalue()


async def test_a_kernel_process_trimming_after_every_render_keeps_rendering_and_gives_the_heap_back() -> None:
    big, small = _png((3000, 2000)), _png((64, 48))
    async with ProcessKernel(processes=1, limits=Limits(), timeout_seconds=60, trim_above_bytes=0) as kernel:
        (child,) = kernel._all
        first = await kernel.render(small, VariantSpec())
        started = psutil.Process(child.proc.pid).memory_info().rss
        for _ in range(3):
            made = await kernel.render(big, VariantSpec())
            assert (made.width, made.height) == (256, 171)
        last = await kernel.render(small, VariantSpec())
        grown = psutil.Process(child.proc.pid).memory_info().rss - started
    assert (first.width, first.height) == (last.width, last.height) == (64, 48)
    # Measured here: 10-17 MB more than after the first small render, against 29-61 MB without trimming.
    assert grown < 25 * MB
