"""The status long-poll: woken by the change itself, and reading the database only as often as it must."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from imgpipe.domain.job import Job, JobStatus
from imgpipe.services.queries import wait_for_change


class OneJob:
    """Just the part of the JobRepository port a long-poll uses, counting the reads."""

    def __init__(self, job_id: UUID) -> None:
        now = datetime.now(UTC)
        self.job = Job(job_id, JobStatus.PENDING, now, now)
        self.reads = 0
        self._version = 0
        self._changed = asyncio.Event()

    async def get(self, job_id: UUID) -> Job:
        self.reads += 1
        return self.job

    def version(self, job_id: UUID) -> int:
        return self._version

    async def changed_since(self, job_id: UUID, version: int, within: float) -> bool:
        if self._version != version:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), within)
            return True
        except TimeoutError:
            return False

    def move(self, status: JobStatus) -> None:
        self.job = Job(self.job.id, status, self.job.created_at, self.job.updated_at)
        self._version += 1
        self._changed.set()


@pytest.mark.parametrize("local_writes", [True, False], ids=["in-process workers", "other processes too"])
async def test_the_change_answers_the_poll_at_once(local_writes: bool) -> None:
    repo = OneJob(uuid4())
    loop = asyncio.get_running_loop()
    loop.call_later(0.6, repo.move, JobStatus.PROCESSING)
    started = loop.time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=10, local_writes=local_writes)  # type: ignore[arg-type]
    assert job.status is JobStatus.PROCESSING
    assert loop.time() - started < 1.5
    if local_writes:
        assert repo.reads == 2  # before, and once after the change: no polling
    else:
        assert repo.reads > 2  # other processes' changes are only seen by reading


async def test_without_a_change_it_answers_at_the_deadline_with_the_job_as_it_is() -> None:
    repo = OneJob(uuid4())
    started = asyncio.get_running_loop().time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=0.3, local_writes=True)  # type: ignore[arg-type]
    assert job.status is JobStatus.PENDING
    assert 0.25 < asyncio.get_running_loop().time() - started < 2
    assert repo.reads == 2
