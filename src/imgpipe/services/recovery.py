"""Reconcile the database (the source of truth) with the queue: requeue the lost, fail the hopeless."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from imgpipe.domain.errors import BrokerUnavailable, DatabaseUnavailable, ProcessingCrashed
from imgpipe.domain.job import JobError
from imgpipe.domain.ports import JobQueue, JobRepository
from imgpipe.services.policy import Policy

__all__ = ["Sweep", "reconcile"]

log = logging.getLogger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class Sweep:
    republished: int = 0
    released: int = 0
    failed: int = 0


async def reconcile(*, jobs: JobRepository, queue: JobQueue, policy: Policy, everything: bool = False) -> Sweep:
    """One sweep. Safe to run from many processes at once: every move is a conditional update.

    Jobs whose lease expired (their worker died or hung) go back to PENDING, or
    end FAILED once they have used their attempts. PENDING jobs whose message was
    never confirmed, or that have waited suspiciously long, are published again.
    ``everything`` (at the start of a single-process ``imgpipe run``, when no one
    else can hold a job) takes back every PROCESSING job and republishes every
    PENDING one at once.
    """
    # A regular sweep takes a batch at a time; a restart takes everything at once (the
    # in-process queue it replaces held all of them).
    batch = None if everything else _BATCH
    failed = 0
    released = []
    for stale in await jobs.expired_leases(batch, all_processing=everything):
        if stale.attempts >= policy.max_attempts:
            if await jobs.fail(stale.id, stale.attempts, JobError.of(ProcessingCrashed())):
                failed += 1
                log.error("job failed: lease expired on its last attempt", extra={"job_id": str(stale.id)})
        elif await jobs.release(stale.id, stale.attempts):
            released.append(stale.id)
            log.warning("lease expired, job queued again", extra={"job_id": str(stale.id)})

    zero = timedelta(0)
    due = await jobs.due_for_publish(
        unpublished_for=zero if everything else policy.republish_after,
        pending_for=zero if everything else policy.requeue_pending_after,
        limit=batch,
    )
    republished = 0
    to_publish = list(dict.fromkeys([*released, *due]))
    # As the API's message does: the worker starts fetching the original while it claims the job.
    # Only a head start: without it (the database gone again) the messages go out all the same.
    try:
        originals = await jobs.originals(to_publish)
    except DatabaseUnavailable:
        originals = {}
    for job_id in to_publish:
        try:
            await queue.publish(job_id, original=originals.get(job_id))
        except BrokerUnavailable:
            log.warning("broker unavailable, republishing later", extra={"job_id": str(job_id)})
            break
        await jobs.mark_published(job_id)
        republished += 1
    if released or failed or republished:
        log.info("reconciled", extra={"republished": republished, "released": len(released), "failed": failed})
    return Sweep(republished=republished, released=len(released), failed=failed)
