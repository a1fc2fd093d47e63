"""Receive a multipart upload as a stream: stage the ``file`` field in the store, count, hash and sniff it as it comes.

Nothing is buffered whole. The byte limit is enforced while reading (a lying or
missing Content-Length changes nothing), the format is sniffed from the first
bytes so a non-image is refused before the rest arrives, and a client that
stops sending is cut off after an idle timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from imgpipe.domain import checksums
from imgpipe.domain.errors import PermanentError, RetryableError, UploadTooLarge
from imgpipe.domain.ports import Staged
from imgpipe.imaging.sniff import HEAD_SIZE, sniff

__all__ = ["BadUpload", "ReceivedFile", "TooManyUploads", "UploadSlots", "UploadTimeout", "receive_upload"]

FIELD = "file"
_ENVELOPE = 256 * 1024  # room for multipart headers and small extra fields


class BadUpload(PermanentError):
    code = "invalid_upload"
    default_message = "Send the image as multipart/form-data in a field named 'file'."


class UploadTimeout(PermanentError):
    code = "upload_timeout"
    default_message = "The upload took too long: it stalled, or trickled past the time limit."


class TooManyUploads(RetryableError):
    code = "too_many_uploads"
    default_message = "This server is receiving as many uploads as it takes at once; try again in a few seconds."


class UploadSlots:
    """At most ``limit`` uploads stream into one process at once; one more is refused at once, not queued.

    Each upload holds a staged file, a descriptor and its share of the disk until it ends:
    without a limit, a crowd of slow clients would exhaust them for everyone.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def take(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise TooManyUploads()
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


@dataclass
class ReceivedFile:
    """What arrived in the ``file`` field; its bytes are in the staged object the caller passed."""

    size: int
    checksum: str
    filename: str | None


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    is_file: bool = False


class _Collector:
    """Multipart callbacks that keep only the first ``file`` field."""

    def __init__(self, max_bytes: int, sink: Staged) -> None:
        self.max_bytes = max_bytes
        self.sink = sink
        self.hash = checksums.hasher()
        self.size = 0
        self.found = False
        self.complete = False  # the closing boundary arrived
        self.filename: str | None = None
        self.done_with_file = False
        self.sniffed = False
        self.head = b""
        self.part = _Part()
        self._field = b""
        self._value = b""

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._add("_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._finished,
        }

    def _add(self, name: str, chunk: bytes) -> None:
        setattr(self, name, getattr(self, name) + chunk)

    def _begin(self) -> None:
        self.part = _Part()

    def _header_end(self) -> None:
        self.part.headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_done(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        if options.get(b"name") == FIELD.encode() and not self.found:
            self.part.is_file = self.found = True
            raw = options.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self.part.is_file or self.done_with_file:
            return
        chunk = memoryview(data)[start:end]  # a view: the hash, the sniff and the sink each read it, none keeps it
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes)
        if not self.sniffed:
            self.head += chunk[: HEAD_SIZE - len(self.head)]
            if len(self.head) >= HEAD_SIZE:
                self._sniff()
        self.hash.update(chunk)
        self.sink.write(chunk)

    def _sniff(self) -> None:
        self.sniffed = True
        if self.head:
            sniff(self.head)  # raises UnsupportedImage: refuse before the rest arrives

    def _finished(self) -> None:
        self.complete = True

    def _end(self) -> None:
        if self.part.is_file:
            self.done_with_file = True
            if not self.sniffed:
                self._sniff()


def too_large(max_bytes: int) -> UploadTooLarge:
    mib = max_bytes / (1024 * 1024)
    return UploadTooLarge(f"The upload is larger than the limit of {mib:g} MiB ({max_bytes} bytes).")


async def receive_upload(
    request: Request, sink: Staged, *, max_bytes: int, idle_timeout: float, total_timeout: float
) -> ReceivedFile:
    """Raise UploadTooLarge, UnsupportedImage, BadUpload or UploadTimeout; the caller commits or discards ``sink``."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadUpload()
    envelope_limit = max_bytes + _ENVELOPE
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > envelope_limit:
        raise too_large(max_bytes)

    collector = _Collector(max_bytes, sink)
    received = 0
    loop = asyncio.get_running_loop()
    try:
        # Generous header size: a 10,000-character filename must reach sanitising, not break parsing.
        parser = MultipartParser(boundary, collector.callbacks(), max_header_size=64 * 1024)
        # One timeout for the whole body, pushed back by every chunk that arrives but never
        # past the overall deadline: a client that stops sending is cut off, and so is one
        # that trickles a byte now and then to hold the connection.
        deadline = loop.time() + total_timeout
        async with asyncio.timeout_at(min(deadline, loop.time() + idle_timeout)) as idle:
            async for chunk in request.stream():
                idle.reschedule(min(deadline, loop.time() + idle_timeout))
                received += len(chunk)
                if received > envelope_limit:
                    raise too_large(max_bytes)
                parser.write(chunk)
        parser.finalize()
    except TimeoutError:
        raise UploadTimeout() from None
    except ClientDisconnect:
        raise BadUpload("The client closed the connection before the upload finished.") from None
    except FormParserError as exc:  # malformed body, or a boundary no parser accepts
        raise BadUpload(f"The multipart body is malformed: {exc}") from exc
    if not collector.complete:
        raise BadUpload("The multipart body ended before its closing boundary: the upload is incomplete.")
    if not collector.found:
        raise BadUpload("The multipart body has no field named 'file'.")
    return ReceivedFile(size=collector.size, checksum=checksums.label(collector.hash), filename=collector.filename)
