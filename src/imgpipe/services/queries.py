"""Read-side use cases: one job, a page of recent jobs, a job's status once it changes, a variant's bytes."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from uuid import UUID

from imgpipe.domain.errors import JobNotFound, ObjectNotFound
from imgpipe.domain.job import Job, Variant
from imgpipe.domain.ports import JobRepository, ObjectStore, ObjectStream, Page

__all__ = ["get_job", "list_jobs", "open_variant", "wait_for_change"]

_FIRST_POLL_SECONDS = 0.1
_LAST_POLL_SECONDS = 1.0


async def get_job(job_id: UUID, *, jobs: JobRepository) -> Job:
    job = await jobs.get(job_id)
    if job is None:
        raise JobNotFound(f"No job has the id {job_id}.")
    return job


async def wait_for_change(job_id: UUID, *, jobs: JobRepository, within: float) -> Job:
    """The job as soon as its status differs from now (or it is final), or after ``within`` seconds."""
    job = await get_job(job_id, jobs=jobs)
    deadline = time.monotonic() + within
    pause = _FIRST_POLL_SECONDS
    while not job.status.is_final and time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        # Quick at first (most jobs take well under a second), then gentler on the database.
        pause = min(pause * 1.5, _LAST_POLL_SECONDS)
        latest = await get_job(job_id, jobs=jobs)
        if latest.status != job.status:
            return latest
        job = latest
    return job


async def list_jobs(*, jobs: JobRepository, limit: int, before: tuple[datetime, UUID] | None) -> Page:
    return await jobs.list_recent(limit, before)


async def open_variant(job: Job, type_: str, *, store: ObjectStore) -> tuple[Variant, ObjectStream]:
    variant = job.variant(type_)
    if variant is None:
        raise ObjectNotFound(f"Job {job.id} has no {type_!r} variant (yet).")
    return variant, await store.open(variant.bucket, variant.key)
