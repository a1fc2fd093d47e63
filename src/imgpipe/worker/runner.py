"""``Worker``: consume deliveries, process each job, settle its message after the commit; reconcile periodically."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

from imgpipe.domain.errors import DatabaseUnavailable, JobNotFound, RetryableError
from imgpipe.domain.message import JobMessage, MalformedMessage, decode
from imgpipe.domain.ports import Delivery, JobQueue, JobRepository, Kernel, ObjectStore
from imgpipe.services.policy import Policy
from imgpipe.services.processing import process_job
from imgpipe.services.recovery import reconcile

__all__ = ["Worker"]

log = logging.getLogger(__name__)


@dataclass
class Worker:
    jobs: JobRepository
    store: ObjectStore
    queue: JobQueue
    kernel: Kernel
    policy: Policy
    prefetch: int
    reconcile_interval: float
    shutdown_grace: float

    def __post_init__(self) -> None:
        self._inflight: set[asyncio.Task[None]] = set()
        self._working_on: dict[UUID, asyncio.Event] = {}  # set when this process's attempt at the job ends

    async def run(self, stop: asyncio.Event, *, recover_everything: bool = False) -> None:
        """Work until ``stop`` is set, then drain within the grace period.

        With ``recover_everything`` (a single-process restart) the first sweep takes back
        every unfinished job before any message is consumed, so it cannot race a claim.
        """
        if recover_everything:
            await self._sweep(everything=True)
        sweeper = asyncio.create_task(self._sweep_forever(), name="reconciler")
        consumer = None
        try:
            # The broker may be away at start: keep listening for stop while waiting for it.
            consuming = asyncio.ensure_future(self.queue.consume(self._handle, self.prefetch))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({consuming, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if consuming.done():
                consumer = consuming.result()
                log.info("worker consuming", extra={"prefetch": self.prefetch})
                await stopping
            else:
                consuming.cancel()
        finally:
            if consumer is not None:
                await consumer.cancel()
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await self._drain()

    async def _drain(self) -> None:
        if not self._inflight:
            return
        log.info("worker stopping, finishing jobs in flight", extra={"jobs": len(self._inflight)})
        _, late = await asyncio.wait(set(self._inflight), timeout=self.shutdown_grace)
        for task in late:
            task.cancel()  # process_job hands its job back; the message is given back too
        if late:
            await asyncio.wait(late)
            log.warning("grace period over, jobs handed back", extra={"jobs": len(late)})

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval)
            await self._sweep(everything=False)

    async def _sweep(self, *, everything: bool) -> None:
        # Never let a sweep's failure end the sweeping: lost jobs would stay lost.
        try:
            await reconcile(jobs=self.jobs, queue=self.queue, policy=self.policy, everything=everything)
        except RetryableError as exc:
            log.warning("reconcile sweep skipped", extra={"error": exc.message})
        except Exception:
            log.exception("reconcile sweep failed")

    async def _until_the_database_answers(self) -> None:
        for attempt in itertools.count(1):
            await asyncio.sleep(self.policy.backoff(attempt))
            try:
                await self.jobs.ping()
                return
            except DatabaseUnavailable:
                continue

    async def _handle(self, delivery: Delivery) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            await self._settle(delivery)
        finally:
            self._inflight.discard(task)

    @asynccontextmanager
    async def _only_attempt_here(self, job_id: UUID) -> AsyncIterator[None]:
        """One delivery of a job at a time in this process: a later one waits for the earlier to be settled.

        The broker redelivers the message of a channel that died (a connection blip) while
        this process still works on it. Processed at once, the redelivery would take the job
        over and render it a second time; after the first attempt, it finds the job final
        (and is acked) or takes over an attempt that really ended.
        """
        while (earlier := self._working_on.get(job_id)) is not None:
            log.info("job already in progress here: the new delivery waits for it", extra={"job_id": str(job_id)})
            await earlier.wait()
        ended = self._working_on[job_id] = asyncio.Event()
        try:
            yield
        finally:
            del self._working_on[job_id]
            ended.set()

    async def _settle(self, delivery: Delivery) -> None:
        try:
            message = decode(delivery.body)
        except MalformedMessage as exc:
            log.error("malformed message dead-lettered", extra={"error": str(exc)})
            await delivery.dead_letter()
            return
        async with self._only_attempt_here(message.job_id):
            await self._process(delivery, message)

    async def _process(self, delivery: Delivery, message: JobMessage) -> None:
        job_id = message.job_id
        try:
            await process_job(
                job_id,
                redelivered=delivery.redelivered,
                jobs=self.jobs,
                store=self.store,
                kernel=self.kernel,
                policy=self.policy,
                original=message.original,
            )
        except JobNotFound:
            log.error("message for an unknown job dead-lettered", extra={"job_id": str(job_id)})
            await delivery.dead_letter()
        except asyncio.CancelledError:
            await asyncio.shield(delivery.retry())
            raise
        except DatabaseUnavailable as exc:
            # Hold the message until the database answers again: given back at once, it
            # would spend the delivery limit of a healthy job on an outage.
            log.warning("database away, holding the job", extra={"job_id": str(job_id), "error": exc.message})
            await self._until_the_database_answers()
            await delivery.retry()
        except RetryableError as exc:
            # The kernel died under the job: give the message back after a pause (the
            # attempt limit, then the delivery limit, bound the loop).
            log.warning("job will be retried", extra={"job_id": str(job_id), "code": exc.code, "error": exc.message})
            await asyncio.sleep(self.policy.backoff(2))
            await delivery.retry()
        except Exception:
            log.exception("unexpected error, message given back", extra={"job_id": str(job_id)})
            await asyncio.sleep(self.policy.backoff(2))
            await delivery.retry()
        else:
            # Ack only after the database commit. A crash in between redelivers the
            # message, and claim() makes the second delivery a no-op.
            await delivery.ack()
