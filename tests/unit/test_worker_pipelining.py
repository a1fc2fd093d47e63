"""A kernel never waits between jobs: the next job is in hand while the last one's variant is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from uuid import UUID

import pytest

from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.adapters.queue.memory import MemoryQueue
from imgpipe.adapters.storage.local import LocalStore
from imgpipe.config import Settings
from imgpipe.domain.job import JobStatus
from imgpipe.imaging.types import Rendered, VariantSpec
from imgpipe.services.policy import Policy
from imgpipe.worker.runner import Worker
from support.rows import pending_job

POLICY = Policy()


class OneSlotKernel:
    """One kernel process: renders take turns; records which original each render was given."""

    def __init__(self) -> None:
        self._slot = asyncio.Semaphore(1)
        self.rendered: list[str] = []
        self.second_started = asyncio.Event()

    async def render(self, source: bytes | Path, spec: VariantSpec) -> Rendered:
        async with self._slot:
            assert isinstance(source, Path)
            self.rendered.append(source.stem)
            if len(self.rendered) == 2:
                self.second_started.set()
            return Rendered(b"\xff\xd8\xff\xd9", "image/jpeg", 4, 3)


class SlowFirstPut(LocalStore):
    """Storing the first variant takes until ``release`` is set: a slow disk, or S3 far away."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.first_put_waiting = asyncio.Event()
        self.release = asyncio.Event()
        self.puts = 0

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self.puts += 1
        if self.puts == 1:
            self.first_put_waiting.set()
            await self.release.wait()
        await super().put(bucket, key, data, content_type)


async def _pending(repo: SqlJobRepository) -> UUID:
    job = pending_job(POLICY.bucket_original)
    await repo.add(job)
    return job.id


@pytest.fixture(autouse=True)
def no_prefetch_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMGPIPE_PREFETCH", raising=False)


def test_by_default_a_worker_holds_two_jobs_per_kernel_process() -> None:
    assert Settings(worker_concurrency=3).effective_prefetch == 6
    assert Settings(worker_concurrency=3, prefetch=3).effective_prefetch == 3  # the operator's word wins


async def test_the_next_job_renders_while_the_last_ones_variant_is_still_being_stored(
    repo: SqlJobRepository, tmp_path: Path
) -> None:
    first, second = await _pending(repo), await _pending(repo)
    kernel, queue, stop = OneSlotKernel(), MemoryQueue(), asyncio.Event()
    async with SlowFirstPut(tmp_path / "objects") as store:
        prefetch = Settings(worker_concurrency=1).effective_prefetch  # the default for one kernel process
        worker = Worker(repo, store, queue, kernel, POLICY, prefetch=prefetch, reconcile_interval=60, shutdown_grace=5)
        running = asyncio.create_task(worker.run(stop))
        try:
            await queue.publish(first)
            await queue.publish(second)
            await asyncio.wait_for(store.first_put_waiting.wait(), 5)
            # The first job's thumbnail is not stored yet, and the kernel is already on the second.
            await asyncio.wait_for(kernel.second_started.wait(), 5)
            assert kernel.rendered == [str(first), str(second)]
            still = await repo.get(first)
            assert still is not None and still.status is JobStatus.PROCESSING
            store.release.set()
            for job_id in (first, second):
                for _ in range(100):
                    job = await repo.get(job_id)
                    assert job is not None
                    if job.status is JobStatus.DONE:
                        break
                    await asyncio.sleep(0.05)
                assert job.status is JobStatus.DONE and job.variant("thumbnail") is not None
        finally:
            store.release.set()
            stop.set()
            await asyncio.wait_for(running, 10)
