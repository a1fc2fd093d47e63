"""The kernel child process: read a request frame on stdin, render, write the reply frame on stdout.

Run as ``python -m imgpipe.worker.kernel_child MAX_PIXELS``. It exits
when its stdin closes, so it never outlives the worker that started it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from imgpipe.worker.frames import PREFIX, pack, read_original, unpack_prefix

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


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
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def serve(max_pixels: int) -> None:
    from imgpipe.domain.errors import ImgpipeError
    from imgpipe.imaging import kernel
    from imgpipe.imaging.types import Limits, VariantSpec

    # Ctrl-C in a terminal reaches the whole process group; the worker decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Keep the protocol pipe to ourselves: anything a native library prints goes to stderr.
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    # One libvips thread: the pool runs one process per core, which is the parallel work.
    kernel.configure(threads=1)
    limits = Limits(max_pixels=max_pixels)

    while True:
        prefix = _read_exact(0, PREFIX.size)
        if prefix is None:
            return
        head_len, payload_len = unpack_prefix(prefix)
        head, payload = _read_exact(0, head_len), _read_exact(0, payload_len)
        if head is None or payload is None:
            return
        request = json.loads(head)
        spec = VariantSpec(**request["spec"])
        reply: dict[str, Any]
        try:
            data = read_original(Path(request["path"])) if "path" in request else payload
            out = kernel.render(data, spec, limits)
        except ImgpipeError as exc:
            reply, data = {"ok": False, "error": type(exc).__name__, "message": exc.message}, b""
        else:
            reply = {"ok": True, "content_type": out.content_type, "width": out.width, "height": out.height}
            data = out.data
        reply["rss"] = _rss_bytes()
        _write_all(reply_fd, pack(reply, data))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
