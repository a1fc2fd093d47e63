"""The status long-poll: woken by the change itself, and reading the database only as often as it must."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from imgpipe.domain.job import Job, JobStatus
from imgpipe.services import queries
from imgpipe.services.queries import wait_for_change


class OneJob:
    """Just the part of the JobRepository port a long-poll uses, counting the reads."""

    def __init__(self, job_id: UUID, *, changes_pushed: bool = True) -> None:
        self.changes_pushed = changes_pushed
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

    def move(self, status: JobStatus, *, heard: bool = True) -> None:
        self.job = Job(self.job.id, status, self.job.created_at, self.job.updated_at)
        if heard:  # as the repository does: the waiters' event is set and a fresh one waits for the next change
            self._version += 1
            woken, self._changed = self._changed, asyncio.Event()
            woken.set()

    def lose_notifications(self) -> None:
        """What a dropped LISTEN connection does: no more pushes, and every waiter woken to read again."""
        self.changes_pushed = False
        self._version += 1
        woken, self._changed = self._changed, asyncio.Event()
        woken.set()


@pytest.mark.parametrize("pushed", [True, False], ids=["changes pushed", "changes only read"])
async def test_the_change_answers_the_poll_at_once(pushed: bool) -> None:
    repo = OneJob(uuid4(), changes_pushed=pushed)
    loop = asyncio.get_running_loop()
    loop.call_later(0.6, repo.move, JobStatus.PROCESSING)
    started = loop.time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=10)  # type: ignore[arg-type]
    assert job.status is JobStatus.PROCESSING
    assert loop.time() - started < 1.5
    if pushed:
        assert repo.reads == 2  # before, and once after the change: no polling
    else:
        assert repo.reads > 2  # other processes' changes are only seen by reading


async def test_without_a_change_it_answers_at_the_deadline_with_the_job_as_it_is() -> None:
    repo = OneJob(uuid4())
    started = asyncio.get_running_loop().time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=0.3)  # type: ignore[arg-type]
    assert job.status is JobStatus.PENDING
    assert 0.25 < asyncio.get_running_loop().time() - started < 2
    assert repo.reads == 2


async def test_once_notifications_are_lost_a_change_nobody_heard_is_found_by_polling() -> None:
    repo = OneJob(uuid4(), changes_pushed=True)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, repo.lose_notifications)
    loop.call_later(0.5, lambda: repo.move(JobStatus.PROCESSING, heard=False))
    started = loop.time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=20)  # type: ignore[arg-type]
    assert job.status is JobStatus.PROCESSING
    assert loop.time() - started < 2  # found by a poll: not at the deadline, nor at the 5 s read
    assert repo.reads > 3  # the wake-up after the gap, then polls


async def test_a_pushed_change_that_never_arrives_is_still_found_by_a_slow_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pooler that drops notifications: the repository believes it hears every change.
    monkeypatch.setattr(queries, "_PUSHED_READ_SECONDS", 0.5)
    repo = OneJob(uuid4(), changes_pushed=True)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, lambda: repo.move(JobStatus.PROCESSING, heard=False))
    started = loop.time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=20)  # type: ignore[arg-type]
    assert job.status is JobStatus.PROCESSING
    assert loop.time() - started < 10


async def test_until_final_lets_processing_go_by_and_answers_at_done() -> None:
    repo = OneJob(uuid4())
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, repo.move, JobStatus.PROCESSING)
    loop.call_later(0.4, repo.move, JobStatus.DONE)
    started = loop.time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=10, final=True)  # type: ignore[arg-type]
    assert job.status is JobStatus.DONE
    assert loop.time() - started < 5
    assert repo.reads == 3  # before, at PROCESSING (read, not answered), at DONE


async def test_until_final_without_an_end_answers_at_the_deadline_with_the_job_as_it_is() -> None:
    repo = OneJob(uuid4())
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, repo.move, JobStatus.PROCESSING)
    started = loop.time()
    job = await wait_for_change(repo.job.id, jobs=repo, within=0.5, final=True)  # type: ignore[arg-type]
    assert job.status is JobStatus.PROCESSING
    assert 0.45 < loop.time() - started < 3
