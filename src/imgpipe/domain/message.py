"""The job message on the wire: a small versioned JSON document naming the job. No I/O lives here."""

from __future__ import annotations

import json
from uuid import UUID

__all__ = ["MalformedMessage", "decode", "encode"]


class MalformedMessage(ValueError):
    """The body is not a job message this version understands; dead-letter it."""


def encode(job_id: UUID) -> bytes:
    return json.dumps({"v": 1, "job_id": str(job_id)}, separators=(",", ":")).encode()


def decode(body: bytes) -> UUID:
    try:
        doc = json.loads(body)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise MalformedMessage("not a version-1 job message")
        return UUID(str(doc["job_id"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"malformed job message: {exc}") from exc
