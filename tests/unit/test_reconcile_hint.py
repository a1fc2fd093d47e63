"""A message the reconciler publishes again says where the original is, as the API's first one did."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from imgpipe.adapters.db import engine
from imgpipe.adapters.db.engine import Tx, open_database
from imgpipe.adapters.db.migrate import upgrade
from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.adapters.db.rows import INSERT_VARIANT, variant_params
from imgpipe.adapters.queue.memory import MemoryQueue
from imgpipe.config import Settings
from imgpipe.domain.errors import DatabaseUnavailable
from imgpipe.domain.job import Job
from imgpipe.domain.message import JobMessage, decode
from imgpipe.domain.ports import Delivery
from imgpipe.services.policy import Policy
from imgpipe.services.recovery import reconcile
from support.rows import pending_job

POLICY = Policy(lease=timedelta(seconds=30))


async def _messages(queue: MemoryQueue, count: int) -> list[JobMessage]:
    got: list[JobMessage] = []

    async def handle(delivery: Delivery) -> None:
        got.append(decode(delivery.body))
        await delivery.ack()

    consumer = await queue.consume(handle, prefetch=count)
    for _ in range(200):
        if len(got) >= count:
            break
        await asyncio.sleep(0.01)
    await consumer.cancel()
    return got


async def test_republished_and_released_jobs_are_published_with_their_originals(repo: SqlJobRepository) -> None:
    never_published, held = pending_job("orig"), pending_job("orig")
    for job in (never_published, held):
        await repo.add(job)
    claimed = await repo.claim(held.id, lease=timedelta(seconds=-1), takeover=False)  # a lease already run out
    assert claimed is not None
    async with MemoryQueue() as queue:
        sweep = await reconcile(jobs=repo, queue=queue, policy=POLICY, everything=True)
        assert (sweep.republished, sweep.released) == (2, 1)
        got = await _messages(queue, 2)
    assert sorted(got, key=lambda m: str(m.job_id)) == sorted(
        [JobMessage(job.id, ("orig", f"{job.id}.jpg")) for job in (never_published, held)],
        key=lambda m: str(m.job_id),
    )


class OriginalsAway(SqlJobRepository):
    """The database fails just when the reconciler asks where the originals are."""

    async def originals(self, job_ids: list[UUID]) -> dict[UUID, tuple[str, str]]:
        raise DatabaseUnavailable("The database did not answer: gone again")


async def test_without_the_originals_the_messages_go_out_all_the_same(repo: SqlJobRepository) -> None:
    job = pending_job("orig")
    await repo.add(job)
    async with MemoryQueue() as queue:
        sweep = await reconcile(jobs=OriginalsAway(repo._db), queue=queue, policy=POLICY, everything=True)
        assert sweep.republished == 1
        assert await _messages(queue, 1) == [JobMessage(job.id, None)]


@pytest.fixture
async def capped_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SqlJobRepository]:
    """SQLite as some builds ship it: at most 999 parameters in one statement (Debian's allows 250,000)."""
    url = Settings(database_url=f"sqlite:///{tmp_path}/jobs.db").database.url
    await upgrade(url)
    connect = engine._sqlite

    def capped(path: str, *, inline: bool = False) -> sqlite3.Connection:
        conn = connect(path, inline=inline)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        return conn

    monkeypatch.setattr(engine, "_sqlite", capped)
    database = open_database(url)
    yield SqlJobRepository(database)
    await database.dispose()


async def test_a_restart_sweep_over_more_jobs_than_one_statement_takes_finds_them_all(
    capped_repo: SqlJobRepository,
) -> None:
    jobs = [pending_job("orig") for _ in range(1200)]

    def insert(tx: Tx, batch: list[Job] = jobs) -> None:
        d = tx.dialect
        for job in batch:
            at = d.at(job.created_at)
            tx.execute(
                "INSERT INTO jobs (id, status, created_at, updated_at, attempts) VALUES (:id, 'PENDING', :at, :at, 0)",
                {"id": d.id(job.id), "at": at},
            )
            tx.many(INSERT_VARIANT, [variant_params(d, job.id, v, job.created_at) for v in job.variants])

    await capped_repo._db.run(insert)
    zero = timedelta(0)
    due = await capped_repo.due_for_publish(unpublished_for=zero, pending_for=zero, limit=None)
    assert sorted(due) == sorted(job.id for job in jobs)
    originals = await capped_repo.originals(due)
    assert originals == {job.id: ("orig", f"{job.id}.jpg") for job in jobs}
    for job_id in due:
        await capped_repo.mark_published(job_id)
    await capped_repo.flush()
    # Every one recorded as published: a sweep that counts unconfirmed ones finds none.
    assert await capped_repo.due_for_publish(unpublished_for=zero, pending_for=timedelta(hours=1), limit=None) == []
