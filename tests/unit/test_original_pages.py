"""A kernel reads an original once: after reading it, its pages leave the page cache."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

import pytest

from imgpipe.domain.errors import ObjectNotFound
from imgpipe.worker.frames import read_original

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this platform")


def _resident_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache, by mincore(2) over a private mapping of it."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with path.open("rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapped))
        vector = (ctypes.c_ubyte * pages)()
        if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vector) != 0:
            raise OSError(ctypes.get_errno(), "mincore")
        return sum(v & 1 for v in vector)


def test_an_original_read_for_the_kernel_leaves_the_page_cache(tmp_path: Path) -> None:
    original = tmp_path / "original.jpg"
    data = os.urandom(4 * 1024 * 1024)
    original.write_bytes(data)
    with original.open("rb") as f:
        os.fsync(f.fileno())  # as the store syncs it when it accepts the upload
    assert original.read_bytes() == data  # read once more: its pages are cached
    assert _resident_pages(original) > 0
    assert read_original(original) == data
    assert _resident_pages(original) == 0


def test_a_missing_original_is_still_not_found(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        read_original(tmp_path / "gone.jpg")
