"""A kernel process hands the heap a big render grew back to the system, after the reply, and only then."""

from __future__ import annotations

import io

import psutil
from PIL import Image

from imgpipe.heap import heap_trimmer
from imgpipe.imaging.types import Limits, VariantSpec
from imgpipe.worker.kernel_child import KEEP_HEAP, release_heap
from imgpipe.worker.kernel_pool import ProcessKernel

MB = 2**20


def test_the_heap_is_trimmed_only_after_a_render_that_left_the_process_above_the_threshold() -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    assert not release_heap(KEEP_HEAP, KEEP_HEAP, trim)
    assert calls == []
    assert release_heap(KEEP_HEAP + 1, KEEP_HEAP, trim)
    assert calls == [0]  # everything free, no padding kept
    assert not release_heap(KEEP_HEAP * 4, KEEP_HEAP, None)  # a C library without malloc_trim


def test_glibcs_malloc_trim_is_found_and_runs() -> None:
    trim = heap_trimmer()
    assert trim is not None
    assert trim(0) in (0, 1)


def _png(size: tuple[int, int]) -> bytes:
    bands = [Image.effect_noise(size, 40).point(lambda v, k=k: (v + 80 * k) % 256) for k in range(3)]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "PNG", compress_level=1)
    return out.getvalue()


async def test_a_kernel_process_trimming_after_every_render_keeps_rendering_and_gives_the_heap_back() -> None:
    big, small = _png((3000, 2000)), _png((64, 48))
    async with ProcessKernel(processes=1, limits=Limits(), timeout_seconds=60, keep_heap_bytes=0) as kernel:
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


def _minor_faults(pid: int) -> int:
    """Pages the process faulted in since it started (``minflt`` in /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


async def _faults_per_render(keep_heap_bytes: int, image: bytes, renders: int) -> list[int]:
    async with ProcessKernel(
        processes=1, limits=Limits(), timeout_seconds=60, keep_heap_bytes=keep_heap_bytes
    ) as kernel:
        (child,) = kernel._all
        faults = []
        for _ in range(renders):
            before = _minor_faults(child.proc.pid)
            made = await kernel.render(image, VariantSpec())
            assert (made.width, made.height) == (256, 171)
            faults.append(_minor_faults(child.proc.pid) - before)
    return faults


def _smooth_png(size: tuple[int, int]) -> bytes:
    """Small on disk (it compresses well), big decoded: 40 MB of pixels at 4500 x 3000."""
    ramp = Image.linear_gradient("L").resize(size)
    flipped = (ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ramp.transpose(Image.Transpose.FLIP_TOP_BOTTOM))
    out = io.BytesIO()
    Image.merge("RGB", [ramp, *flipped]).save(out, "PNG", compress_level=1)
    return out.getvalue()


async def test_a_kernel_process_renders_again_in_the_memory_the_last_render_freed() -> None:
    # Its 40 MB buffers are past the largest size glibc's own adaptive threshold serves from the heap
    # (32 MB): without the kernel's malloc tunables they are fresh mappings, faulted in (and zeroed) at
    # every render, trimmed or not. Measured here, once the heap has grown (a render or two): 0-33 page
    # faults a render, against 2,000-5,000 with the heap kept but no tunables, and as many with none kept.
    big = _smooth_png((4500, 3000))
    kept = await _faults_per_render(KEEP_HEAP, big, renders=5)
    none = await _faults_per_render(0, big, renders=5)
    assert sorted(kept[-3:])[1] * 10 < min(none[-3:]), (kept, none)
