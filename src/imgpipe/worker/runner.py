"""``Worker``: consume deliveries, process each job, settle its message after the commit; reconcile periodically."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from imgpipe.adapters.queue.message import MalformedMessage, decode
from imgpipe.domain.errors import JobNotFound, RetryableError
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

    async def run(self, stop: asyncio.Event, *, recover_everything: bool = False) -> None:
        """Work until ``stop`` is set, then drain within the grace period."""
        sweeper = asyncio.create_task(self._sweep_forever(recover_everything), name="reconciler")
        consumer = await self.queue.consume(self._handle, self.prefetch)
        log.info("worker consuming", extra={"prefetch": self.prefetch})
        try:
            await stop.wait()
        finally:
            await consumer.cancel()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
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

    async def _sweep_forever(self, everything: bool) -> None:
        while True:
            try:
                await reconcile(jobs=self.jobs, queue=self.queue, policy=self.policy, everything=everything)
            except RetryableError as exc:
                log.warning("reconcile sweep skipped", extra={"error": exc.message})
            everything = False
            await asyncio.sleep(self.reconcile_interval)

    async def _handle(self, delivery: Delivery) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            await self._settle(delivery)
        finally:
            self._inflight.discard(task)

    async def _settle(self, delivery: Delivery) -> None:
        try:
            job_id = decode(delivery.body)
        except MalformedMessage as exc:
            log.error("malformed message dead-lettered", extra={"error": str(exc)})
            await delivery.dead_letter()
            return
        try:
            await process_job(
                job_id,
                redelivered=delivery.redelivered,
                jobs=self.jobs,
                store=self.store,
                kernel=self.kernel,
                policy=self.policy,
            )
        except JobNotFound:
            log.error("message for an unknown job dead-lettered", extra={"job_id": str(job_id)})
            await delivery.dead_letter()
        except asyncio.CancelledError:
            await asyncio.shield(delivery.retry())
            raise
        except RetryableError as exc:
            # The database or the kernel is away: give the message back after a pause,
            # so the retry finds them again (the delivery limit bounds the loop).
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
