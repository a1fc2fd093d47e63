"""Read-side use cases: one job, a page of recent jobs, a job's status once it changes, a variant's bytes."""

from __future__ import annotations

import time
from datetime import datetime
from uuid import UUID

from imgpipe.domain.errors import JobNotFound, ObjectNotFound
from imgpipe.domain.job import Job, Variant
from imgpipe.domain.ports import JobRepository, ObjectStore, ObjectStream, Page

__all__ = ["get_job", "list_jobs", "open_variant", "wait_for_change"]

_FIRST_POLL_SECONDS = 0.1
_LAST_POLL_SECONDS = 1.0
# Pushed changes are still read this often: a notification lost before the listener's
# next probe finds the loss makes a change late, never missed.
_PUSHED_READ_SECONDS = 5.0


async def get_job(job_id: UUID, *, jobs: JobRepository) -> Job:
    job = await jobs.get(job_id)
    if job is None:
        raise JobNotFound(f"No job has the id {job_id}.")
    return job


async def wait_for_change(job_id: UUID, *, jobs: JobRepository, within: float, final: bool = False) -> Job:
    """The job as soon as its status differs from now (or it is final), or after ``within`` seconds.

    ``final``: only a final status (DONE or FAILED) ends the wait early; PROCESSING goes by
    unanswered, which spares a client that wants the result the request in between.

    Woken by the change itself while the repository sees every change (``changes_pushed``), and
    then the database is read once per change. Otherwise it also polls: quick at first (most
    jobs take well under a second), then gentler.
    """
    seen = jobs.version(job_id)  # before the read: a change in between is not missed
    job = await get_job(job_id, jobs=jobs)
    deadline = time.monotonic() + within
    pause = _FIRST_POLL_SECONDS
    while not job.status.is_final and time.monotonic() < deadline:
        left = max(0.0, deadline - time.monotonic())
        await jobs.changed_since(job_id, seen, min(_PUSHED_READ_SECONDS if jobs.changes_pushed else pause, left))
        pause = min(pause * 1.5, _LAST_POLL_SECONDS)
        seen = jobs.version(job_id)
        latest = await get_job(job_id, jobs=jobs)
        if latest.status != job.status and (latest.status.is_final or not final):
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
