"""Rows to domain objects and back: how a Job and its Variants sit in the two tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from imgpipe.adapters.db.engine import Dialect, Tx
from imgpipe.domain.job import ORIGINAL, Job, JobError, JobStatus, Variant

__all__ = [
    "INSERT_VARIANT",
    "JOB_COLUMNS",
    "VARIANT_COLUMNS",
    "job_of",
    "jobs_with_variants",
    "variant_of",
    "variant_params",
]

JOB_COLUMNS = (
    "id, status, created_at, updated_at, started_at, finished_at, attempts, filename, error_code, error_message"
)
VARIANT_COLUMNS = "type, bucket, key, content_type, format, width, height, bytes, checksum"


def jobs_with_variants(tx: Tx, rows: list[tuple[Any, ...]]) -> list[Job]:
    """Jobs for ``rows`` (JOB_COLUMNS), each with its variants: one query for all."""
    if not rows:
        return []
    d = tx.dialect
    ids = [r[0] for r in rows]
    params: dict[str, Any] = {}
    found: dict[Any, list[Variant]] = {i: [] for i in ids}
    query = (
        f"SELECT job_id, {VARIANT_COLUMNS} FROM variants WHERE {d.in_('job_id', 'ids', ids, params)}"
        " ORDER BY created_at, type"
    )
    for v in tx.rows(query, params):
        found[v[0]].append(variant_of(v[1:]))
    return [job_of(d, r, found[r[0]]) for r in rows]


def variant_of(v: tuple[Any, ...]) -> Variant:
    """A Variant from VARIANT_COLUMNS, in that order."""
    return Variant(
        type=v[0],
        bucket=v[1],
        key=v[2],
        content_type=v[3],
        format=v[4],
        width=v[5],
        height=v[6],
        bytes=v[7],
        checksum=v[8],
    )


def job_of(d: Dialect, row: tuple[Any, ...], found: list[Variant]) -> Job:
    """A Job from JOB_COLUMNS (in that order) and its variants."""
    error = JobError(row[8], row[9] or "") if row[8] else None
    # The original first, then the rest in the order they were made.
    ordered = sorted(found, key=lambda v: v.type != ORIGINAL)
    created, updated = d.read_at(row[2]), d.read_at(row[3])
    assert created is not None and updated is not None
    return Job(
        id=d.read_id(row[0]),
        status=JobStatus(row[1]),
        created_at=created,
        updated_at=updated,
        started_at=d.read_at(row[4]),
        finished_at=d.read_at(row[5]),
        attempts=row[6],
        filename=row[7],
        error=error,
        variants=tuple(ordered),
    )


def variant_params(d: Dialect, job_id: UUID, v: Variant, at: datetime) -> dict[str, Any]:
    return {
        "job_id": d.id(job_id),
        "type": v.type,
        "bucket": v.bucket,
        "key": v.key,
        "content_type": v.content_type,
        "format": v.format,
        "width": v.width,
        "height": v.height,
        "bytes": v.bytes,
        "checksum": v.checksum,
        "created_at": d.at(at),
    }


INSERT_VARIANT = (
    "INSERT INTO variants (job_id, type, bucket, key, content_type, format, width, height, bytes, checksum, created_at)"
    " VALUES (:job_id, :type, :bucket, :key, :content_type, :format, :width, :height, :bytes, :checksum, :created_at)"
)
