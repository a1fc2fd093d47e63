"""``ProcessKernel``: the Kernel port on a pool of child processes, with a hard timeout per job.

One child per slot, each rendering one image at a time with libvips on its own
core. A child that hangs is killed when the job's time is up; one that dies
(a native crash, the OOM killer) is replaced. Either way the worker lives on.
``ThreadKernel`` is the in-process twin for tests and tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

from imgpipe.domain import errors
from imgpipe.domain.errors import ImgpipeError, ProcessingCrashed, ProcessingTimeout
from imgpipe.imaging.types import Limits, Rendered, VariantSpec
from imgpipe.worker.frames import PREFIX, pack, read_original, unpack_prefix
from imgpipe.worker.kernel_child import KEEP_HEAP

__all__ = ["ProcessKernel", "ThreadKernel", "child_env", "malloc_tunables"]

log = logging.getLogger(__name__)

_PIPE_SLICE = 1 << 20
# Big decode buffers (libjpeg's whole-image coefficient arrays for a progressive file: 72 MB
# at 24 MP) advised as transparent huge pages fault in 512 times less often: measured when
# they were fresh mappings at every render, a 24 MP progressive JPEG 79 -> 56 ms, the other
# formats unchanged (bench/ corpus, one core). glibc 2.35 and later; anything else ignores it.
_HUGE_PAGES = "glibc.malloc.hugetlb=1"


class _Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.broken = False  # an exchange was cut short: the pipe is out of step

    @property
    def alive(self) -> bool:
        return not self.broken and self.proc.returncode is None

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


def malloc_tunables(keep_heap_bytes: int = KEEP_HEAP) -> str:
    """glibc's malloc settings for a kernel process that keeps ``keep_heap_bytes`` between renders.

    Allocations up to that size come from the heap (``mmap_threshold``) and the heap's free top stays
    up to it (``trim_threshold``): a render reuses the pages the last one freed, where a fresh mapping
    is faulted in and zeroed again (``kernel_child.KEEP_HEAP`` has the figures). Larger buffers are
    mapped and handed back at once, as before. 0 keeps nothing: glibc's own, adaptive thresholds.
    """
    if keep_heap_bytes <= 0:
        return _HUGE_PAGES
    return f"{_HUGE_PAGES}:glibc.malloc.mmap_threshold={keep_heap_bytes}:glibc.malloc.trim_threshold={keep_heap_bytes}"


def child_env(keep_heap_bytes: int = KEEP_HEAP) -> dict[str, str]:
    """This process's environment plus the kernel's malloc tunables; those the operator set come later and win."""
    env = dict(os.environ)
    own = env.get("GLIBC_TUNABLES")
    ours = malloc_tunables(keep_heap_bytes)
    env["GLIBC_TUNABLES"] = f"{ours}:{own}" if own else ours
    return env


class ProcessKernel:
    """Use as ``async with ProcessKernel(...) as kernel``; children start on entry."""

    def __init__(
        self,
        *,
        processes: int,
        limits: Limits,
        timeout_seconds: float,
        max_rss_bytes: int = 1 << 30,
        keep_heap_bytes: int = KEEP_HEAP,
    ) -> None:
        """``keep_heap_bytes``: the memory a kernel process keeps between renders to reuse (0: none)."""
        self._size = processes
        self._limits = limits
        self._timeout = timeout_seconds
        self._max_rss = max_rss_bytes
        self._keep_heap = keep_heap_bytes
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._all: set[_Child] = set()

    async def __aenter__(self) -> ProcessKernel:
        for _ in range(self._size):
            self._idle.put_nowait(await self._spawn())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in list(self._all):
            if child.proc.stdin is not None:
                child.proc.stdin.close()  # the child exits on EOF
        for child in list(self._all):
            try:
                await asyncio.wait_for(child.proc.wait(), 5)
            except TimeoutError:
                await child.kill()
        self._all.clear()

    async def _spawn(self) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "imgpipe.worker.kernel_child",
            str(self._limits.max_pixels),
            str(self._keep_heap),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=child_env(self._keep_heap),
        )
        child = _Child(proc)
        self._all.add(child)
        return child

    async def _replace(self, child: _Child) -> _Child:
        await child.kill()
        self._all.discard(child)
        return await self._spawn()

    async def render(self, source: bytes | Path, spec: VariantSpec) -> Rendered:
        child = await self._idle.get()
        try:
            if not child.alive:
                child = await self._replace(child)
            try:
                reply, payload = await asyncio.wait_for(self._exchange(child, source, spec), self._timeout)
            except TimeoutError:
                log.error("kernel timed out, killing its process", extra={"pid": child.proc.pid})
                child = await self._replace(child)
                raise ProcessingTimeout(f"Making the {spec.name} took longer than {self._timeout:g} s.") from None
            except asyncio.CancelledError:
                child.broken = True
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                raise
            except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
                await child.kill()  # it may have closed its pipe without exiting: make sure
                code = child.proc.returncode
                log.error("kernel process died", extra={"pid": child.proc.pid, "returncode": code})
                child = await self._replace(child)
                raise ProcessingCrashed(f"The image kernel process died (exit status {code}).") from exc
            if int(str(reply.get("rss", 0))) > self._max_rss:
                log.info("kernel process recycled after growing", extra={"pid": child.proc.pid, "rss": reply["rss"]})
                child = await self._replace(child)
            return _result(reply, payload)
        finally:
            self._idle.put_nowait(child)

    @staticmethod
    async def _exchange(child: _Child, source: bytes | Path, spec: VariantSpec) -> tuple[dict[str, object], bytes]:
        stdin, stdout = child.proc.stdin, child.proc.stdout
        assert stdin is not None and stdout is not None
        request: dict[str, object] = {"spec": asdict(spec)}
        if isinstance(source, Path):
            request["path"], source = str(source), b""  # the child opens the file itself
        # In slices, each drained: a whole original left in the transport's buffer would be
        # a second copy of it in memory.
        for part in pack(request, source):
            view = memoryview(part)
            for start in range(0, len(view), _PIPE_SLICE):
                stdin.write(view[start : start + _PIPE_SLICE])
                await stdin.drain()
        head_len, payload_len = unpack_prefix(await stdout.readexactly(PREFIX.size))
        reply = json.loads(await stdout.readexactly(head_len))
        return reply, await stdout.readexactly(payload_len)


def _result(reply: dict[str, object], payload: bytes) -> Rendered:
    if reply["ok"]:
        return Rendered(
            data=payload,
            content_type=str(reply["content_type"]),
            width=int(str(reply["width"])),
            height=int(str(reply["height"])),
        )
    cls = getattr(errors, str(reply["error"]), None)
    if not (isinstance(cls, type) and issubclass(cls, ImgpipeError)):
        cls = errors.CorruptImage
    raise cls(str(reply["message"]))


class ThreadKernel:
    """The kernel in this process, on threads: no isolation and no hard timeout."""

    def __init__(self, *, limits: Limits, concurrency: int = 1) -> None:
        self._limits = limits
        self._slots = asyncio.Semaphore(concurrency)

    async def __aenter__(self) -> ThreadKernel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def render(self, source: bytes | Path, spec: VariantSpec) -> Rendered:
        from imgpipe.imaging import kernel

        async with self._slots:
            data = source if isinstance(source, bytes) else await asyncio.to_thread(read_original, source)
            return await asyncio.to_thread(kernel.render, data, spec, self._limits)
