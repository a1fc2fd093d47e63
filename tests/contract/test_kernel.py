"""The Kernel contract, run against the child-process pool and the in-process twin alike."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imgpipe.domain.errors import CorruptImage, ImageTooLarge, ObjectNotFound, UnsupportedImage
from imgpipe.imaging.types import Limits, VariantSpec
from imgpipe.worker.kernel_pool import ProcessKernel, ThreadKernel, child_env, malloc_tunables
from support.corpus import CORPUS

LIMITS = Limits(max_pixels=1_000_000)


@pytest.fixture(params=["process", "thread"])
async def kernel(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    made: Any
    if request.param == "process":
        made = ProcessKernel(processes=2, limits=LIMITS, timeout_seconds=30)
    else:
        made = ThreadKernel(limits=LIMITS, concurrency=2)
    async with made:
        yield made


def jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "orange").save(out, "JPEG")
    return out.getvalue()


async def test_a_photo_becomes_a_thumbnail_that_fits_the_box(kernel: Any) -> None:
    made = await kernel.render(jpeg((800, 600)), VariantSpec())
    assert (made.content_type, made.width, made.height) == ("image/jpeg", 256, 192)
    assert Image.open(io.BytesIO(made.data)).size == (256, 192)


async def test_a_file_is_read_by_the_kernel_itself_and_a_missing_one_is_not_found(kernel: Any, tmp_path: Path) -> None:
    original = tmp_path / "original.jpg"
    original.write_bytes(jpeg((600, 800)))
    made = await kernel.render(original, VariantSpec())
    assert (made.width, made.height) == (192, 256)
    with pytest.raises(ObjectNotFound):
        await kernel.render(tmp_path / "gone.jpg", VariantSpec())
    # The child is still there for the next job.
    assert (await kernel.render(original, VariantSpec(width=64, height=64))).height == 64


async def test_the_image_errors_arrive_as_the_same_domain_errors(kernel: Any) -> None:
    truncated = (CORPUS / "hostile/truncated/truncated_jpeg.jpg").read_bytes()
    with pytest.raises(CorruptImage):
        await kernel.render(truncated, VariantSpec())
    with pytest.raises(UnsupportedImage):
        await kernel.render(b"<svg xmlns='http://www.w3.org/2000/svg'/>", VariantSpec())
    with pytest.raises(ImageTooLarge):
        await kernel.render(jpeg((1200, 1000)), VariantSpec())  # over this kernel's 1 MP limit


async def test_renders_run_side_by_side_and_each_gets_its_own_result(kernel: Any) -> None:
    import asyncio

    sizes = [(300 + 40 * i, 200) for i in range(6)]
    made = await asyncio.gather(*(kernel.render(jpeg(s), VariantSpec(width=100, height=100)) for s in sizes))
    assert [(m.width, m.height) for m in made] == [(100, round(100 * 200 / w)) for w, _ in sizes]


async def test_kernel_processes_run_with_the_huge_page_malloc_tunable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    async with ProcessKernel(processes=1, limits=LIMITS, timeout_seconds=30) as pool:
        [child] = pool._all
        tunables = _tunables_of(child.proc.pid)
        assert (await pool.render(jpeg((800, 600)), VariantSpec())).width == 256
    assert tunables == malloc_tunables()


def _tunables_of(pid: int) -> str:
    """A process's GLIBC_TUNABLES from /proc. ld.so cuts the string at each ':' in place as it reads it, so
    once it has, the parts follow as entries of their own: read before, the string is whole."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    at = next(i for i, entry in enumerate(entries) if entry.startswith(b"GLIBC_TUNABLES="))
    parts = [entries[at].removeprefix(b"GLIBC_TUNABLES=")]
    parts += itertools.takewhile(lambda entry: entry.startswith(b"glibc."), entries[at + 1 :])
    return b":".join(parts).decode()


@pytest.mark.parametrize("operator", [None, "glibc.malloc.arena_max=2"])
def test_the_operators_own_tunables_come_after_and_win(operator: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # (Read back from /proc, the child's copy would show only the first: ld.so splits the string in place.)
    if operator is None:
        monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    else:
        monkeypatch.setenv("GLIBC_TUNABLES", operator)
    expected = malloc_tunables() + (f":{operator}" if operator else "")
    assert child_env()["GLIBC_TUNABLES"] == expected
