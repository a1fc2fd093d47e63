"""The kernel pipe protocol: length-prefixed frames of a JSON header and a byte payload."""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = ["PREFIX", "pack", "unpack_prefix"]

PREFIX = struct.Struct("<IQ")  # header length, payload length


def pack(header: dict[str, Any], payload: bytes = b"") -> list[bytes]:
    head = json.dumps(header, separators=(",", ":")).encode()
    return [PREFIX.pack(len(head), len(payload)), head, payload]


def unpack_prefix(prefix: bytes) -> tuple[int, int]:
    head_len, payload_len = PREFIX.unpack(prefix)
    return int(head_len), int(payload_len)
