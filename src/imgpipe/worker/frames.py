"""The kernel pipe protocol: length-prefixed frames of a JSON header and a byte payload.

A request's header is ``{"spec": {...}}`` with the original as the payload, or with
``"path"`` naming a file of it and no payload.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from imgpipe.domain.errors import ObjectNotFound, StoreUnavailable

__all__ = ["PREFIX", "pack", "read_original", "unpack_prefix"]

PREFIX = struct.Struct("<IQ")  # header length, payload length


def pack(header: dict[str, Any], payload: bytes = b"") -> list[bytes]:
    head = json.dumps(header, separators=(",", ":")).encode()
    return [PREFIX.pack(len(head), len(payload)), head, payload]


def unpack_prefix(prefix: bytes) -> tuple[int, int]:
    head_len, payload_len = PREFIX.unpack(prefix)
    return int(head_len), int(payload_len)


def read_original(path: Path) -> bytes:
    """The original's bytes from the folder store: ``ObjectNotFound`` if gone, ``StoreUnavailable`` if unreadable."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise ObjectNotFound(f"No original at {path.name}.") from exc
    except OSError as exc:
        raise StoreUnavailable(f"The storage folder failed reading {path.name}: {exc.strerror}") from exc
