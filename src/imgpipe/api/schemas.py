"""The HTTP contract's bodies: how a Job becomes JSON, and the page cursor."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from imgpipe.domain.job import Job, JobStatus, Variant

__all__ = ["JobOut", "JobPage", "decode_cursor", "encode_cursor"]


class ErrorOut(BaseModel):
    code: str = Field(examples=["corrupt_image"])
    message: str


class OriginalOut(BaseModel):
    """What the uploaded file is, decided from its bytes."""

    content_type: str = Field(examples=["image/jpeg"])
    format: str | None = Field(examples=["jpeg"])
    width: int
    height: int
    bytes: int
    checksum: str | None = Field(description="'blake3:' and 64 hex digits (older jobs: 'sha256:...').")
    filename: str | None = Field(description="The client's filename, sanitised; metadata only.")


class VariantOut(BaseModel):
    type: str = Field(examples=["original", "thumbnail"])
    content_type: str
    width: int
    height: int
    bytes: int
    checksum: str | None = Field(description="'blake3:' and 64 hex digits; the download's ETag is the hex part.")
    url: str = Field(description="Streams the bytes through the API, for every storage backend.")
    presigned_url: str | None = Field(
        default=None, description="Direct, short-lived object-storage URL (S3 only), signed for the public endpoint."
    )


class JobOut(BaseModel):
    id: UUID
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    original: OriginalOut | None
    variants: list[VariantOut]
    error: ErrorOut | None
    links: dict[Literal["self"], str]


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


def job_out(job: Job, *, base_url: str, presign: dict[str, str | None]) -> JobOut:
    me = f"{base_url}/api/v1/images/{job.id}"
    original = job.original
    return JobOut(
        id=job.id,
        status=job.status,
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        original=_original(original, job.filename) if original else None,
        variants=[_variant(v, me, presign.get(v.type)) for v in job.variants],
        error=ErrorOut(code=job.error.code, message=job.error.message) if job.error else None,
        links={"self": me},
    )


def _described(v: Variant) -> dict[str, Any]:
    """What the original and each variant say of their bytes alike."""
    return {
        "content_type": v.content_type,
        "width": v.width,
        "height": v.height,
        "bytes": v.bytes,
        "checksum": v.checksum,
    }


def _original(v: Variant, filename: str | None) -> OriginalOut:
    return OriginalOut(**_described(v), format=v.format, filename=filename)


def _variant(v: Variant, me: str, presigned: str | None) -> VariantOut:
    return VariantOut(**_described(v), type=v.type, url=f"{me}/variants/{v.type}", presigned_url=presigned)


def encode_cursor(position: tuple[datetime, UUID]) -> str:
    raw = f"{position[0].isoformat()}|{position[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Raise ValueError for anything that is not a cursor this API made."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        at = datetime.fromisoformat(when)
        if at.tzinfo is None:
            raise ValueError("cursor time has no zone")
        return at, UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"invalid cursor: {exc}") from exc
