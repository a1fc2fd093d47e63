"""Rows to domain objects and back: how a Job and its Variants sit in the two tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.engine import Connection

from imgpipe.adapters.db.tables import variants
from imgpipe.domain.job import ORIGINAL, Job, JobError, JobStatus, Variant

__all__ = ["jobs_with_variants", "variant_row"]


def jobs_with_variants(conn: Connection, rows: list[Any]) -> list[Job]:
    """Jobs for ``rows`` of the jobs table, each with its variants (one query for all)."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    found: dict[UUID, list[Variant]] = {i: [] for i in ids}
    query = select(variants).where(variants.c.job_id.in_(ids)).order_by(variants.c.created_at, variants.c.type)
    for v in conn.execute(query).mappings():
        found[v["job_id"]].append(
            Variant(
                type=v["type"],
                bucket=v["bucket"],
                key=v["key"],
                content_type=v["content_type"],
                format=v["format"],
                width=v["width"],
                height=v["height"],
                bytes=v["bytes"],
                checksum=v["checksum"],
            )
        )
    return [_job(r, found[r["id"]]) for r in rows]


def _job(row: Any, found: list[Variant]) -> Job:
    error = JobError(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    # The original first, then the rest in the order they were made.
    ordered = sorted(found, key=lambda v: v.type != ORIGINAL)
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
        filename=row["filename"],
        error=error,
        variants=tuple(ordered),
    )


def variant_row(job_id: UUID, v: Variant, at: datetime) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "type": v.type,
        "bucket": v.bucket,
        "key": v.key,
        "content_type": v.content_type,
        "format": v.format,
        "width": v.width,
        "height": v.height,
        "bytes": v.bytes,
        "checksum": v.checksum,
        "created_at": at,
    }
