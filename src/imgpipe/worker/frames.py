"""The kernel pipe protocol: length-prefixed frames of a JSON header and a byte payload.

A request's header is ``{"spec": {...}}`` with the original as the payload, or with
``"path"`` naming a file of it and no payload.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from imgpipe.domain.errors import ObjectNotFound, StoreUnavailable

__all__ = ["PREFIX", "pack", "read_original", "unpack_prefix"]

PREFIX = struct.Struct("<IQ")  # header length, payload length


def pack(header: dict[str, Any], payload: bytes = b"") -> list[bytes]:
    """The frame in two parts: the prefix with the header (one write, one wake-up of the reader), then the payload."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return [PREFIX.pack(len(head), len(payload)) + head, payload]


def unpack_prefix(prefix: bytes) -> tuple[int, int]:
    head_len, payload_len = PREFIX.unpack(prefix)
    return int(head_len), int(payload_len)


def read_original(path: Path) -> bytes:
    """The original's bytes from the folder store: ``ObjectNotFound`` if gone, ``StoreUnavailable`` if unreadable.

    Its pages then leave the page cache (``_forget``).
    """
    try:
        with path.open("rb") as f:
            data = f.read()
            _forget(f.fileno())
        return data
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise ObjectNotFound(f"No original at {path.name}.") from exc
    except OSError as exc:
        raise StoreUnavailable(f"The storage folder failed reading {path.name}: {exc.strerror}") from exc


def _forget(fd: int) -> None:
    """Drop a read original's pages from the page cache: once rendered, nothing reads it again soon.

    Kept, every stored original stays in memory until the OS wants the room, pushing out pages
    that are read again (the database's), and each new upload is written into memory not used
    before instead of the pages the last ones freed. On this project's VM, whose host takes freed
    memory back (virtio-balloon free page reporting), writing into such memory cost up to 6 times
    more: a 5 MB PNG upload 23-25 ms of CPU late in a long run, 11-12 with this. The original was
    synced when it was accepted, so its pages are clean and simply go. Where there is no
    ``posix_fadvise``, or it fails, they stay.
    """
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
