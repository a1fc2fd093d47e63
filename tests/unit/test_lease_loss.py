"""Takeovers: a worker whose job is taken over stops rendering at the next lease extension; one that keeps its
lease finishes; a redelivery to the worker still rendering the job waits for that render instead of taking over."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.adapters.queue.memory import MemoryQueue
from imgpipe.adapters.storage.local import LocalStore
from imgpipe.domain.errors import ProcessingCrashed
from imgpipe.domain.job import Job, JobStatus
from imgpipe.domain.message import encode
from imgpipe.imaging.types import Rendered, VariantSpec
from imgpipe.services.policy import Policy
from imgpipe.services.processing import Outcome, process_job
from imgpipe.worker.runner import Worker
from support.rows import pending_job

POLICY = Policy(lease=timedelta(seconds=0.3))  # extended every 0.1 s


class HeldKernel:
    """A render that lasts until ``finish`` is set; records whether it was cancelled instead."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.finish = asyncio.Event()
        self.cancelled = False
        self.renders = 0
        self.crashes = 0  # how many renders, from the first, die as a killed kernel process would

    async def render(self, source: bytes | Path, spec: VariantSpec) -> Rendered:
        self.renders += 1
        self.started.set()
        if self.renders <= self.crashes:
            raise ProcessingCrashed()
        try:
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return Rendered(b"\xff\xd8\xff\xd9", "image/jpeg", 4, 3)


async def _pending_job(repo: SqlJobRepository) -> Job:
    job = pending_job(POLICY.bucket_original)
    await repo.add(job)
    return job


@asynccontextmanager
async def _rendering(
    repo: SqlJobRepository, tmp_path: Path
) -> AsyncIterator[tuple[Job, HeldKernel, asyncio.Task[Outcome]]]:
    """A pending job being processed, its render held in the kernel until the test lets it go."""
    job = await _pending_job(repo)
    kernel = HeldKernel()
    async with LocalStore(tmp_path / "objects") as store:
        working = asyncio.create_task(
            process_job(job.id, redelivered=False, jobs=repo, store=store, kernel=kernel, policy=POLICY)
        )
        await asyncio.wait_for(kernel.started.wait(), 5)
        yield job, kernel, working


async def test_a_job_taken_over_mid_render_is_abandoned_and_left_to_its_new_holder(
    repo: SqlJobRepository, tmp_path: Path
) -> None:
    async with _rendering(repo, tmp_path) as (job, kernel, working):
        taken = await repo.claim(job.id, lease=timedelta(minutes=5), takeover=True)  # another worker
        assert taken is not None and taken.attempts == 2
        outcome = await asyncio.wait_for(working, 2)  # the render was never let finish
    assert outcome is Outcome.SKIPPED and kernel.cancelled
    now = await repo.get(job.id)
    assert now is not None and now.status is JobStatus.PROCESSING and now.attempts == 2  # not handed back


async def test_a_render_longer_than_the_lease_finishes_while_the_lease_is_kept(
    repo: SqlJobRepository, tmp_path: Path
) -> None:
    async with _rendering(repo, tmp_path) as (job, kernel, working):
        await asyncio.sleep(1.0)  # over three leases: without the extensions it would have expired
        assert not working.done()
        kernel.finish.set()
        outcome = await asyncio.wait_for(working, 5)
    assert outcome is Outcome.DONE and not kernel.cancelled
    done = await repo.get(job.id)
    assert done is not None and done.status is JobStatus.DONE and done.attempts == 1


async def test_a_worker_stopping_mid_render_cancels_it_and_hands_the_job_back(
    repo: SqlJobRepository, tmp_path: Path
) -> None:
    async with _rendering(repo, tmp_path) as (job, kernel, working):
        working.cancel()
        with pytest.raises(asyncio.CancelledError):
            await working
    assert kernel.cancelled
    back = await repo.get(job.id)
    assert back is not None and back.status is JobStatus.PENDING


async def test_a_failing_lease_keeper_is_not_a_lost_lease_and_the_render_finishes(
    repo: SqlJobRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("a bug in extend_lease")

    monkeypatch.setattr(repo, "extend_lease", broken)
    async with _rendering(repo, tmp_path) as (job, kernel, working):
        await asyncio.sleep(0.3)  # the keeper has failed by now
        assert not working.done()
        kernel.finish.set()
        assert await asyncio.wait_for(working, 5) is Outcome.DONE
    assert not kernel.cancelled and "lease keeper failed" in caplog.text


class RecordedDelivery:
    def __init__(self, job: Job, *, redelivered: bool) -> None:
        self.body = encode(job.id)
        self.redelivered = redelivered
        self.settled: list[str] = []

    async def ack(self) -> None:
        self.settled.append("ack")

    async def retry(self) -> None:
        self.settled.append("retry")

    async def dead_letter(self) -> None:
        self.settled.append("dead_letter")


@asynccontextmanager
async def _worker(repo: SqlJobRepository, tmp_path: Path, kernel: HeldKernel) -> AsyncIterator[Worker]:
    async with LocalStore(tmp_path / "objects") as store:
        policy = Policy(lease=POLICY.lease, retry_backoff_seconds=0.05)
        yield Worker(repo, store, MemoryQueue(), kernel, policy, prefetch=4, reconcile_interval=60, shutdown_grace=1)


async def test_a_redelivery_while_this_worker_renders_the_job_waits_for_it_and_renders_nothing(
    repo: SqlJobRepository, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The broker redelivers the message of a channel that died mid-job, to the same worker.
    caplog.set_level(logging.INFO, logger="imgpipe.worker.runner")
    job, kernel = await _pending_job(repo), HeldKernel()
    first, again = RecordedDelivery(job, redelivered=False), RecordedDelivery(job, redelivered=True)
    async with _worker(repo, tmp_path, kernel) as worker:
        working = asyncio.create_task(worker._handle(first))
        await asyncio.wait_for(kernel.started.wait(), 5)
        waiting = asyncio.create_task(worker._handle(again))
        await asyncio.sleep(0.4)  # a takeover would have claimed and started a second render by now
        assert kernel.renders == 1 and not waiting.done()
        assert "the new delivery waits for it" in caplog.text
        kernel.finish.set()
        await asyncio.wait_for(asyncio.gather(working, waiting), 5)
    assert first.settled == ["ack"] and again.settled == ["ack"]
    assert kernel.renders == 1 and not kernel.cancelled
    done = await repo.get(job.id)
    assert done is not None and done.status is JobStatus.DONE and done.attempts == 1
    assert worker._working_on == {}


async def test_a_redelivery_takes_the_job_over_once_this_workers_attempt_ended_unfinished(
    repo: SqlJobRepository, tmp_path: Path
) -> None:
    job, kernel = await _pending_job(repo), HeldKernel()
    kernel.crashes = 1  # the first attempt's kernel dies: its delivery is given back
    kernel.finish.set()
    first, again = RecordedDelivery(job, redelivered=False), RecordedDelivery(job, redelivered=True)
    async with _worker(repo, tmp_path, kernel) as worker:
        await asyncio.wait_for(asyncio.gather(worker._handle(first), worker._handle(again)), 5)
    assert first.settled == ["retry"] and again.settled == ["ack"]
    assert kernel.renders == 2
    done = await repo.get(job.id)
    assert done is not None and done.status is JobStatus.DONE and done.attempts == 2
