"""``receive_upload`` hands the staged object views into the chunks as they arrive: every byte, and no copies."""

from __future__ import annotations

import io
import random
from typing import IO, Any

from PIL import Image
from starlette.requests import Request

from imgpipe.api.upload import receive_upload
from imgpipe.domain import checksums


class _Sink:
    def __init__(self) -> None:
        self.writes: list[bytes | memoryview] = []

    def write(self, data: bytes | memoryview) -> None:
        self.writes.append(data)

    def reader(self) -> IO[bytes]:
        return io.BytesIO(b"".join(self.writes))

    async def commit(self, key: str, content_type: str) -> None:
        return None

    async def discard(self) -> None:
        return None


def _request(body: bytes, boundary: str, chunk: int) -> tuple[Request, list[bytes]]:
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    headers = [(b"content-type", f"multipart/form-data; boundary={boundary}".encode())]
    scope = {"type": "http", "method": "POST", "path": "/api/v1/images", "headers": headers}
    return Request(scope, receive), chunks


def _jpeg_with_tail(tail: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 200, 30)).save(out, "JPEG")
    # Bytes after the image, still the upload's, kept as sent; seeded, for the reason in the test below.
    return out.getvalue() + random.Random(1).randbytes(tail)


async def test_every_byte_reaches_the_sink_as_a_view_into_the_chunk_it_arrived_in() -> None:
    image = _jpeg_with_tail(700_000)
    boundary = "imgpipe-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request, chunks = _request(body, boundary, chunk=65_537)  # boundaries and headers fall across chunks
    # A chunk that ends in what may be the start of the closing delimiter has those few bytes held back
    # by the parser and sent on from its own copy of the delimiter. Random bytes do that now and then
    # (a chunk ending in "\r"); this input, seeded, does not.
    delimiter = f"\r\n--{boundary}".encode()
    assert not any(c.endswith(delimiter[:k]) for c in chunks[:-1] for k in range(1, len(delimiter)))
    sink = _Sink()
    received = await receive_upload(request, sink, max_bytes=10_000_000, idle_timeout=5, total_timeout=30)
    assert b"".join(sink.writes) == image
    assert received.size == len(image)
    assert received.checksum == checksums.checksum(image)
    assert received.filename == "a.jpg"
    # No copy of the upload per chunk: each write is a view of a received chunk.
    assert len(sink.writes) >= len(image) // 65_537
    for written in sink.writes:
        assert isinstance(written, memoryview)
        assert any(written.obj is chunk for chunk in chunks)
