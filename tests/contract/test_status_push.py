"""Status changes another process writes reach a listening repository (PostgreSQL), and a lost connection loses none.

Two repositories on two connection pools stand for an API process and a worker process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest

from imgpipe.adapters.db import listener
from imgpipe.adapters.db.engine import open_database
from imgpipe.adapters.db.migrate import upgrade
from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.config import Settings
from imgpipe.domain.job import ORIGINAL, Job, JobStatus, Variant
from support.services import free_port

LEASE = timedelta(minutes=1)
PATIENCE = 15.0  # what a waiter waits at most: a change that was never heard ends the wait unwoken


@pytest.fixture
async def pair(pg_url: str) -> AsyncIterator[tuple[SqlJobRepository, SqlJobRepository, str]]:
    """(the API's repository, the worker's, the database's libpq URL)."""
    url = Settings(database_url=pg_url).database.url
    databases = [open_database(url), open_database(url)]
    api, worker = (SqlJobRepository(d) for d in databases)
    yield api, worker, pg_url
    for repository, database in ((api, databases[0]), (worker, databases[1])):
        await repository.close()
        await database.dispose()


async def until_listening(repo: SqlJobRepository) -> None:
    for _ in range(200):
        if repo.changes_pushed:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the repository never started listening")


async def waiting(repo: SqlJobRepository, job_id: UUID) -> tuple[int, asyncio.Task[bool]]:
    """A long-poll's wait on ``job_id`` from now: the version it started from, and its task, already waiting."""
    seen = repo.version(job_id)
    woken = asyncio.create_task(repo.changed_since(job_id, seen, PATIENCE))
    await asyncio.sleep(0.1)
    return seen, woken


@asynccontextmanager
async def a_waiter(
    listening: SqlJobRepository, writing: SqlJobRepository
) -> AsyncIterator[tuple[UUID, int, asyncio.Task[bool]]]:
    """While ``listening`` hears status changes: a new job ``writing`` added, and a long-poll on it already waiting."""
    async with listening.listen():
        await until_listening(listening)
        job_id = await new_job(writing)
        seen, woken = await waiting(listening, job_id)
        yield job_id, seen, woken


async def new_job(repo: SqlJobRepository) -> UUID:
    job_id, now = uuid4(), datetime.now(UTC)
    original = Variant(ORIGINAL, "orig", f"{job_id}.jpg", "image/jpeg", 640, 480, 12345, "blake3:" + "ab" * 32, "jpeg")
    await repo.add(Job(job_id, JobStatus.PENDING, now, now, variants=(original,)))
    return job_id


async def test_a_status_change_written_elsewhere_wakes_the_listening_side(
    pair: tuple[SqlJobRepository, SqlJobRepository, str],
) -> None:
    api, worker, _ = pair
    assert not api.changes_pushed  # not listening yet: long-polls poll
    async with a_waiter(api, worker) as (job_id, seen, woken):
        claimed = await worker.claim(job_id, lease=LEASE, takeover=False)
        assert claimed is not None
        assert await woken  # a wait that no notification ends returns False at PATIENCE
        assert api.version(job_id) == seen + 1

        # Moving the lease is no status change: nothing is announced.
        assert await worker.extend_lease(job_id, claimed.attempts, LEASE)
        assert not await api.changed_since(job_id, seen + 1, 0.5)

        # Nor is a takeover: PROCESSING stays PROCESSING, with a new attempt.
        clock_past_the_lease = datetime.now(UTC) + 2 * LEASE
        worker._now = lambda: clock_past_the_lease
        taken = await worker.claim(job_id, lease=LEASE, takeover=True)
        assert taken is not None and taken.attempts == claimed.attempts + 1
        assert not await api.changed_since(job_id, seen + 1, 0.5)

        assert await worker.complete(job_id, taken.attempts, [])
        assert await api.changed_since(job_id, seen + 1, PATIENCE)
        job = await api.get(job_id)
        assert job is not None and job.status is JobStatus.DONE
    assert not api.changes_pushed  # stopped listening


async def test_a_change_written_by_the_listening_process_itself_counts_once(
    pair: tuple[SqlJobRepository, SqlJobRepository, str],
) -> None:
    # `imgpipe run` on PostgreSQL and RabbitMQ: the API and a worker share one repository,
    # which hears its own writes announced as well.
    both, _, _ = pair
    async with a_waiter(both, both) as (job_id, seen, woken):
        claimed = await both.claim(job_id, lease=LEASE, takeover=False)
        assert claimed is not None
        assert await woken  # by the announcement
        await asyncio.sleep(0.5)  # time for a second count, if there were one
        assert both.version(job_id) == seen + 1
        # So a long-poll that read PROCESSING and waits on is not woken again for it.
        assert not await both.changed_since(job_id, seen + 1, 0.5)

        assert await both.complete(job_id, claimed.attempts, [])
        assert await both.changed_since(job_id, seen + 1, PATIENCE)
        await asyncio.sleep(0.5)
        assert both.version(job_id) == seen + 2


async def test_a_lost_connection_wakes_every_waiter_and_listening_resumes(
    pair: tuple[SqlJobRepository, SqlJobRepository, str],
) -> None:
    api, worker, conninfo = pair
    async with a_waiter(api, worker) as (job_id, seen, woken):
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as admin:
            cursor = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'imgpipe-status' AND datname = current_database()"
            )
            assert [row[0] for row in await cursor.fetchall()] == [True]
        # A change may have gone by while nobody listened: the waiter is told to read again.
        assert await woken
        assert api.version(job_id) != seen

        await until_listening(api)  # back, on a new connection
        _, woken = await waiting(api, job_id)
        assert await worker.claim(job_id, lease=LEASE, takeover=False) is not None
        assert await woken


async def test_all_writes_in_this_process_need_no_listening(tmp_path: Path) -> None:
    url = Settings(database_url=f"sqlite:///{tmp_path}/jobs.db").database.url
    await upgrade(url)
    database = open_database(url)
    try:
        others_write = SqlJobRepository(database)
        async with others_write.listen():  # SQLite announces nothing: there is nothing to hear
            await asyncio.sleep(0.1)
            assert not others_write.changes_pushed
        assert SqlJobRepository(database, all_writes_here=True).changes_pushed
    finally:
        await database.dispose()


async def test_a_database_that_does_not_answer_leaves_long_polls_polling(caplog: pytest.LogCaptureFixture) -> None:
    database = open_database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing")  # nobody there
    try:
        repo = SqlJobRepository(database)
        async with repo.listen():
            await asyncio.sleep(1.5)
            assert not repo.changes_pushed
    finally:
        await database.dispose()
    refused = [r for r in caplog.records if r.name == listener.__name__ and r.levelno == logging.WARNING]
    assert len(refused) >= 2  # it keeps trying


async def test_a_database_not_yet_migrated_is_not_listened_to(pg_empty_url: str) -> None:
    url = Settings(database_url=pg_empty_url).database.url
    await upgrade(url, "20261128_0002")  # the schema before the trigger: LISTEN works, nothing is ever sent
    database = open_database(url)
    try:
        repo = SqlJobRepository(database)
        async with repo.listen():
            await asyncio.sleep(1.0)
            assert not repo.changes_pushed  # long-polls keep polling
    finally:
        await database.dispose()


async def test_a_probe_that_does_not_come_back_counts_as_a_lost_connection(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A pooler that swallows notifications: probes are "sent", none arrives.
    async def swallowed(conn: object) -> str:
        return "probe-never-sent"

    monkeypatch.setattr(listener.StatusListener, "_probe", staticmethod(swallowed))
    status = listener.StatusListener(pg_url, on_change=lambda _: None, on_gap=lambda: None, probe_seconds=0.3)
    async with status:
        await asyncio.sleep(1.0)
        assert not status.listening
    assert any("did not come back" in str(getattr(r, "error", "")) for r in caplog.records)
