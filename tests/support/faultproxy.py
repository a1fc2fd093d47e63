"""A small TCP fault proxy between imgpipe and one server: pass, down, reset mid-stream, latency, blackhole.

It runs its own event loop in a thread, so imgpipe processes started by a test
connect through it like through a flaky network.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

__all__ = ["FaultProxy"]


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode = "pass"  # pass | down | blackhole
        self.latency = 0.0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    # --- control, from the test's thread -------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start()).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def down(self) -> None:
        """Refuse new connections and cut the open ones, as a dead server would."""
        self.mode = "down"
        self.reset()

    def up(self) -> None:
        self.mode = "pass"
        self.latency = 0.0

    def blackhole(self) -> None:
        """Keep connections open but forward nothing: the peer hangs until its own timeout."""
        self.mode = "blackhole"

    def slow(self, seconds: float) -> None:
        self.latency = seconds

    def reset(self) -> None:
        """Cut every open connection with a TCP reset, mid-stream."""
        self._call(self._reset()).result(10)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.down()
        try:
            yield
        finally:
            self.up()

    # --- inside the proxy's loop ------------------------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        await self._reset()
        if self._server is not None:
            self._server.close()

    async def _reset(self) -> None:
        for writer in list(self._live):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    # Linger 0: close() sends RST instead of FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._live.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            self._live.add(client_w)
            await self._reset()
            return
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._live.update({client_w, server_w})
        await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w), return_exceptions=True)
        self._live.difference_update({client_w, server_w})
        for w in (client_w, server_w):
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            while self.mode == "blackhole":  # noqa: ASYNC110 - the mode is flipped from another thread
                await asyncio.sleep(0.05)
            if self.latency:
                await asyncio.sleep(self.latency)
            writer.write(chunk)
            await writer.drain()
        writer.transport.abort()
