"""The kernel child process: read a request frame on stdin, render, write the reply frame on stdout.

Run as ``python -m imgpipe.worker.kernel_child MAX_PIXELS [KEEP_HEAP_BYTES]``. It exits
when its stdin closes, so it never outlives the worker that started it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgpipe.heap import heap_trimmer
from imgpipe.worker.frames import PREFIX, pack, read_original, unpack_prefix

if TYPE_CHECKING:
    from imgpipe.imaging.types import Limits

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# A kernel process keeps this much memory (RSS) between renders. Past it, the heap's free pages go back
# to the system (malloc_trim, 1-2 ms) after the reply, not on the job's path. Below it, the next render
# reuses the pages the last one freed: with the malloc thresholds ``kernel_pool.child_env`` sets, big
# decode buffers come from the heap instead of fresh mappings the OS faults in and zeroes at every
# render (8 % of the kernel processes' CPU in the pipeline, all in ``clear_page``). Measured over three
# shuffled passes of bench/'s corpus in one process: 62 against 71-73 ms per image, 0.3-1.5 ms of it in
# the OS against 9-10; the process then holds 250-265 MB against 120-190.
KEEP_HEAP = 256 * 2**20


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _write_all(fd: int, parts: list[bytes]) -> None:
    """All of ``parts``, in one system call unless the pipe takes less: one wake-up of the worker, not one per part."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views:
            views[0] = views[0][written:]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def release_heap(rss: int, keep: int, trim: Callable[[int], int] | None) -> bool:
    """Give the heap's free pages back after a render that left the process above ``keep``."""
    if trim is None or rss <= keep:
        return False
    trim(0)
    return True


def serve(max_pixels: int, keep_heap: int = KEEP_HEAP) -> None:
    from imgpipe.imaging import kernel
    from imgpipe.imaging.types import Limits

    # Ctrl-C in a terminal reaches the whole process group; the worker decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol pipe to ourselves: anything a native library prints goes to stderr.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    # One libvips thread: the pool runs one process per core, which is the parallel work.
    kernel.configure(threads=1)
    limits = Limits(max_pixels=max_pixels)
    trim = heap_trimmer()

    while True:
        prefix = _read_exact(0, PREFIX.size)
        if prefix is None:
            return
        head_len, payload_len = unpack_prefix(prefix)
        head, payload = _read_exact(0, head_len), _read_exact(0, payload_len)
        if head is None or payload is None:
            return
        reply, data = _answer(json.loads(head), payload, limits)
        reply["rss"] = _rss_bytes()
        _write_all(reply_fd, pack(reply, data))
        payload = data = b""  # the original and the variant go back to the heap before it is trimmed
        release_heap(reply["rss"], keep_heap, trim)


def _answer(request: dict[str, Any], payload: bytes, limits: Limits) -> tuple[dict[str, Any], bytes]:
    """The reply head and the variant's bytes (none on an image error)."""
    from imgpipe.domain.errors import ImgpipeError
    from imgpipe.imaging import kernel
    from imgpipe.imaging.types import VariantSpec

    try:
        original = read_original(Path(request["path"])) if "path" in request else payload
        out = kernel.render(original, VariantSpec(**request["spec"]), limits)
    except ImgpipeError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": exc.message}, b""
    return {"ok": True, "content_type": out.content_type, "width": out.width, "height": out.height}, out.data


if __name__ == "__main__":
    serve(*(int(arg) for arg in sys.argv[1:3]))
