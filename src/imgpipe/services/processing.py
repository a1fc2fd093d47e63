"""Process one job: claim it, make its variants, record the result. Idempotent under redelivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from imgpipe.domain.checksums import checksum
from imgpipe.domain.errors import (
    DatabaseUnavailable,
    ObjectNotFound,
    PermanentError,
    ProcessingCrashed,
    StoreUnavailable,
)
from imgpipe.domain.job import Job, JobError, Variant
from imgpipe.domain.ports import JobRepository, Kernel, ObjectStore
from imgpipe.imaging.types import Rendered, VariantSpec
from imgpipe.services.policy import Policy, with_retries

__all__ = ["Outcome", "process_job", "variant_key"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Outcome(StrEnum):
    DONE = "DONE"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # a duplicate or late delivery: someone else has it, or it is final


def variant_key(job_id: UUID, spec: VariantSpec, rendered: Rendered) -> str:
    # Deterministic: a retried or duplicated job overwrites the same object,
    # so a DONE job has exactly one object per variant.
    return f"{job_id}/{spec.name}.{rendered.format.extension}"


async def process_job(
    job_id: UUID,
    *,
    redelivered: bool,
    jobs: JobRepository,
    store: ObjectStore,
    kernel: Kernel,
    policy: Policy,
    original: tuple[str, str] | None = None,
) -> Outcome:
    """Raise ``JobNotFound`` for an unknown job (dead-letter the message) and a
    ``RetryableError`` when the job should be tried again later (give the message back).

    ``original``: where the message says the job's original is (bucket, key). From an object
    store, it is fetched while the job is claimed, one database round trip earlier.
    """
    with _EarlyFetch(store, original) as early:
        job = await jobs.claim(job_id, lease=policy.lease, takeover=redelivered)
        if job is None:
            log.info("delivery skipped: job final or held by another worker", extra={"job_id": str(job_id)})
            return Outcome.SKIPPED
        context = {"job_id": str(job_id), "attempt": job.attempts}
        if job.attempts > policy.max_attempts:
            await jobs.fail(job_id, job.attempts, JobError.of(ProcessingCrashed()))
            log.error("job failed: attempts exhausted", extra=context)
            return Outcome.FAILED

        log.info("job processing", extra=context)
        try:
            made = await _while_leased(
                jobs, job, policy, _make_variants(job, store=store, kernel=kernel, policy=policy, early=early)
            )
        except _LeaseLost:
            # Another worker took the job over (this one stalled past its lease): its attempt is the
            # one that counts, so this one stops now instead of rendering for nothing.
            log.warning("lease lost, attempt abandoned", extra=context)
            return Outcome.SKIPPED
        except (PermanentError, StoreUnavailable) as exc:
            # Storage still away after the bounded retries fails the job, as corrupt data does.
            await jobs.fail(job_id, job.attempts, JobError.of(exc))
            log.warning("job failed", extra={**context, "code": exc.code, "error": exc.message})
            return Outcome.FAILED
        except asyncio.CancelledError:
            # Stopping: hand the job back so another worker takes it at once.
            with contextlib.suppress(DatabaseUnavailable):
                await asyncio.shield(jobs.release(job_id, job.attempts))
            raise
        except ProcessingCrashed:
            log.warning("kernel crashed under the job; it will be retried", extra=context)
            raise

        if not await jobs.complete(job_id, job.attempts, made):
            log.warning("job taken over by another worker before completion", extra=context)
            return Outcome.SKIPPED
        log.info("job done", extra={**context, "variants": [v.type for v in made]})
        return Outcome.DONE


class _EarlyFetch:
    """The original's GET, started from the message's hint before the job is claimed; cancelled at exit if unused."""

    def __init__(self, store: ObjectStore, where: tuple[str, str] | None) -> None:
        self.where = where
        self.task: asyncio.Task[bytes] | None = None
        if where is None:
            return
        try:
            local = store.local_path(*where)
        except ValueError:  # a key that would leave its bucket: never ours, and never the job's failure
            return
        if local is None:  # not a file the kernel opens itself
            self.task = asyncio.ensure_future(store.get(*where))
            # Its failure is handled where it is awaited, or it was not needed: never "never retrieved".
            self.task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def __enter__(self) -> _EarlyFetch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()

    async def result(self, bucket: str, key: str) -> bytes | None:
        """The fetched bytes if they are the recorded original's; None to fetch it the usual way."""
        if self.task is None or self.where != (bucket, key):
            return None
        try:
            return await self.task
        except (StoreUnavailable, ObjectNotFound):
            return None  # fetched again, with the retries


async def _make_variants(
    job: Job, *, store: ObjectStore, kernel: Kernel, policy: Policy, early: _EarlyFetch
) -> list[Variant]:
    original = job.original
    if original is None:
        raise PermanentError(f"Job {job.id} has no original recorded.")
    # A file the kernel can open itself (the folder store) never passes through this process.
    source: bytes | Path | None = store.local_path(original.bucket, original.key)
    if source is None:
        source = await early.result(original.bucket, original.key)
    if source is None:
        source = await with_retries(lambda: store.get(original.bucket, original.key), policy, "get original")
    made = []
    for spec in policy.variants:
        rendered = await kernel.render(source, spec)
        key = variant_key(job.id, spec, rendered)
        await with_retries(
            lambda: store.put(policy.bucket_processed, key, rendered.data, rendered.content_type),  # noqa: B023
            policy,
            "put variant",
        )
        made.append(
            Variant(
                type=spec.name,
                bucket=policy.bucket_processed,
                key=key,
                content_type=rendered.content_type,
                format=rendered.format.value,
                width=rendered.width,
                height=rendered.height,
                bytes=len(rendered.data),
                checksum=checksum(rendered.data),
            )
        )
    return made


class _LeaseLost(Exception):
    """The job's lease could not be extended: another attempt holds the job now."""


async def _while_leased(jobs: JobRepository, job: Job, policy: Policy, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` while extending the job's lease, so the reconciler leaves it alone.

    Raises ``_LeaseLost`` (with ``work`` cancelled, and a kernel render with it) when an
    extension finds the job taken over. A database outage is not a loss: it keeps trying.
    """

    async def beat() -> None:
        interval = policy.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(DatabaseUnavailable):
                if not await jobs.extend_lease(job.id, job.attempts, policy.lease):
                    return

    task = asyncio.ensure_future(work)
    beater = asyncio.create_task(beat(), name=f"lease-{job.id}")
    try:
        await asyncio.wait({task, beater}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        failed = beater.exception()
        if failed is None:
            raise _LeaseLost()
        # A bug in the keeper is not a lost lease: finish the work unkept, as the reconciler allows.
        log.error("lease keeper failed", extra={"job_id": str(job.id)}, exc_info=failed)
        return await task
    finally:
        for running in (beater, task):
            running.cancel()
        # Cancelled from outside (the worker stopping) or not, the work's clean-up runs to its end.
        await asyncio.gather(beater, task, return_exceptions=True)
