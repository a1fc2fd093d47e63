"""A lean HTTP/1.1 client for the load generator: keep-alive connections on asyncio streams, bodies built once.

The harness runs on the same cores as what it measures, so its own CPU is taken from
the thing measured. httpx cost 13-25 CPU ms per upload-and-wait of a 12 MP JPEG here,
about as much as imgpipe's API; this client costs a small fraction of that, and the
peer (thumbor) is driven by the same client, so neither side pays for the harness more.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Client", "Response", "client", "multipart"]


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def multipart(
    field: str, filename: str, data: bytes, content_type: str = "application/octet-stream"
) -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart/form-data request with one file field."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return f"multipart/form-data; boundary={boundary}", b"".join((head, data, f"\r\n--{boundary}--\r\n".encode()))


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> Response:
        fresh = self._writer is None
        try:
            return await self._send(method, target, body, headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            await self.close()
            if fresh or method != "GET":
                raise
            return await self._send(method, target, body, headers)  # the server closed a kept connection

    async def _send(self, method: str, target: str, body: bytes, headers: dict[str, str]) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}:{self._port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if body:
            self._writer.write(body)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        got = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                got[name.strip().lower()] = value.strip()
        if "content-length" in got:
            payload = await self._reader.readexactly(int(got["content-length"]))
        elif got.get("transfer-encoding", "").lower() == "chunked":
            payload = await self._chunked()
        else:
            payload = await self._reader.read()
        delimited = "content-length" in got or "transfer-encoding" in got
        if got.get("connection", "").lower() == "close" or not delimited:
            await self.close()
        return Response(status, got, payload)

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass


class Client:
    """Up to ``size`` keep-alive connections to one origin; ``request`` takes a free one."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        assert parts.scheme == "http" and parts.hostname and parts.port, url
        self._all = [_Connection(parts.hostname, parts.port) for _ in range(size)]
        self._free: asyncio.Queue[_Connection] = asyncio.Queue()
        for conn in self._all:
            self._free.put_nowait(conn)

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        conn = await self._free.get()
        try:
            return await conn.request(method, target, body, headers or {})
        finally:
            self._free.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()


@asynccontextmanager
async def client(url: str, size: int) -> AsyncIterator[Client]:
    c = Client(url, size)
    try:
        yield c
    finally:
        await c.close()
