"""Bounded reads from an untrusted, seekable file: every length is checked against the file size."""

from __future__ import annotations

import io
import mmap
from collections.abc import Callable
from typing import IO

from imgpipe.domain.errors import CorruptImage

__all__ = ["Cursor", "Source", "Truncated"]

_WINDOW = 64 * 1024


class Truncated(CorruptImage):
    """The file ends inside a structure its header promised."""


class Source:
    """Random access to a file whose size is known; reading past the end is a corrupt header.

    ``Source.of_file(f)`` seeks and reads a file object; ``Source.of_buffer(b)`` slices bytes
    or a memory map, with no system call per read.
    """

    def __init__(self, size: int, at: Callable[[int, int], bytes]) -> None:
        self.size = size
        self._at = at  # (offset, n) -> at most n bytes from offset

    @classmethod
    def of_file(cls, f: IO[bytes]) -> Source:
        def at(offset: int, n: int) -> bytes:
            f.seek(offset)
            return f.read(n)

        return cls(f.seek(0, io.SEEK_END), at)

    @classmethod
    def of_buffer(cls, buffer: bytes | mmap.mmap) -> Source:
        return cls(len(buffer), lambda offset, n: buffer[offset : offset + n])

    def read(self, offset: int, n: int, what: str) -> bytes:
        """Exactly ``n`` bytes at ``offset``, or CorruptImage naming ``what`` was cut short."""
        if offset < 0 or n < 0 or offset + n > self.size:
            raise Truncated(f"The image is truncated or inconsistent: the {what} runs past the end of the file.")
        data = self._at(offset, n)
        if len(data) != n:
            raise Truncated(f"The image is truncated: the {what} could not be read.")
        return data

    def read_upto(self, offset: int, n: int) -> bytes:
        """At most ``n`` bytes at ``offset``; fewer near the end of the file."""
        if offset < 0 or offset >= self.size or n <= 0:
            return b""
        return self._at(offset, min(n, self.size - offset))

    def reader(self, offset: int, length: int) -> Callable[[int, int], bytes]:
        """Random reads confined to [offset, offset + length): ``read(at, n)`` returns at most ``n``
        bytes at ``offset + at``, fewer at the end of the range or the file, none outside."""

        def read(at: int, n: int) -> bytes:
            if at < 0 or at >= length:
                return b""
            return self.read_upto(offset + at, min(n, length - at))

        return read

    def cursor(self, offset: int, window: int = _WINDOW) -> Cursor:
        return Cursor(self, offset, window)


class Cursor:
    """Forward reads through a window, for formats walked byte by byte (GIF blocks, JPEG markers)."""

    def __init__(self, source: Source, offset: int, window: int = _WINDOW) -> None:
        self._source = source
        self._window = window
        self._base = offset
        self._buf = b""
        self._pos = 0  # position inside _buf

    @property
    def offset(self) -> int:
        return self._base + self._pos

    @property
    def at_end(self) -> bool:
        return self.offset >= self._source.size

    def _fill(self, n: int) -> bool:
        if self._pos + n <= len(self._buf):
            return True
        self._base += self._pos
        self._buf = self._source.read_upto(self._base, max(n, self._window))
        self._pos = 0
        return n <= len(self._buf)

    def u8(self, what: str) -> int:
        if not self._fill(1):
            raise Truncated(f"The image is truncated: the {what} is missing.")
        value = self._buf[self._pos]
        self._pos += 1
        return value

    def take(self, n: int, what: str) -> bytes:
        if n > self._window:
            data = self._source.read(self.offset, n, what)
            self.skip(n, what)
            return data
        if not self._fill(n):
            raise Truncated(f"The image is truncated: the {what} is missing.")
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        target = self.offset + n
        if n < 0 or target > self._source.size:
            raise Truncated(f"The image is truncated: the {what} runs past the end of the file.")
        if self._pos + n <= len(self._buf):
            self._pos += n
        else:
            self._base, self._buf, self._pos = target, b"", 0

    def find(self, byte: int, limit: int) -> int:
        """Skip ahead to the next ``byte`` within ``limit`` bytes; return how many were skipped, or -1."""
        skipped = 0
        while skipped <= limit:
            if not self._fill(1):
                return -1
            at = self._buf.find(bytes((byte,)), self._pos)
            if at >= 0:
                skipped += at - self._pos
                self._pos = at
                return skipped if skipped <= limit else -1
            skipped += len(self._buf) - self._pos
            self._pos = len(self._buf)
        return -1
