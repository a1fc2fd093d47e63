"""The job message on the wire: a small versioned JSON document naming the job. No I/O lives here.

Besides the job, a message may say where the job's original is stored (``original``): the
worker then fetches it while it claims the job, instead of after. It is a hint, never the
record: the job row says which original the job has, and a message without the hint (or
with a stale one) is processed as before. Decoders of version 1 ignore fields they do not
know, so the hint needs no new version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from uuid import UUID

__all__ = ["JobMessage", "MalformedMessage", "decode", "encode"]


class MalformedMessage(ValueError):
    """The body is not a job message this version understands; dead-letter it."""


@dataclass(frozen=True, slots=True)
class JobMessage:
    job_id: UUID
    original: tuple[str, str] | None = None  # (bucket, key), where the job's original was stored


def encode(job_id: UUID, original: tuple[str, str] | None = None) -> bytes:
    doc: dict[str, object] = {"v": 1, "job_id": str(job_id)}
    if original is not None:
        doc["original"] = {"bucket": original[0], "key": original[1]}
    return json.dumps(doc, separators=(",", ":")).encode()


def decode(body: bytes) -> JobMessage:
    try:
        doc = json.loads(body)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise MalformedMessage("not a version-1 job message")
        job_id = UUID(str(doc["job_id"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"malformed job message: {exc}") from exc
    return JobMessage(job_id, _original(doc.get("original")))


def _original(value: object) -> tuple[str, str] | None:
    """A well-formed hint, or None: a bad hint costs the early fetch, never the job."""
    if isinstance(value, dict):
        bucket, key = value.get("bucket"), value.get("key")
        if isinstance(bucket, str) and isinstance(key, str) and bucket and key:
            return bucket, key
    return None
