"""SQLite transactions run on the event loop's thread; a lock held elsewhere sends them to a pool thread to wait."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from imgpipe.adapters.db import engine
from imgpipe.adapters.db.engine import Database, Tx, open_database
from imgpipe.adapters.db.migrate import upgrade
from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.config import Settings
from imgpipe.domain.job import Job, JobStatus


@pytest.fixture
async def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.db"
    await upgrade(Settings(database_url=f"sqlite:///{path}").database.url)
    return path


@pytest.fixture
async def database(db_file: Path) -> AsyncIterator[Database]:
    db = open_database(f"sqlite:///{db_file}")
    yield db
    await db.dispose()


def _job() -> Job:
    now = datetime.now(UTC)
    return Job(id=uuid4(), status=JobStatus.PENDING, created_at=now, updated_at=now, filename="x" * 2000)


async def _add_inline(database: Database) -> None:
    """A job row added as an ordinary (not durable) write: on the event loop's connection."""
    job, d = _job(), database.dialect
    row = {"id": d.id(job.id), "at": d.at(job.created_at), "filename": job.filename}
    await database.run(
        lambda tx: tx.execute(
            "INSERT INTO jobs (id, status, created_at, updated_at, attempts, filename)"
            " VALUES (:id, 'PENDING', :at, :at, 0, :filename)",
            row,
        )
    )


def _size(path: Path) -> int:
    return os.stat(path).st_size  # a file on local disk: no need for a thread


def _thread_of(tx: Tx) -> int:
    return threading.get_ident()


async def test_a_transaction_runs_on_the_event_loops_own_thread(database: Database) -> None:
    assert await database.run(_thread_of, write=False) == threading.get_ident()
    assert await database.run(_thread_of) == threading.get_ident()


async def test_a_write_lock_held_by_another_connection_is_waited_for_off_the_loop(
    database: Database, db_file: Path
) -> None:
    repo = SqlJobRepository(database)
    await repo.add(_job())  # the first connection puts a new database in WAL mode
    other = sqlite3.connect(db_file, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # as another process holding the write lock would
    job = _job()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    adding = asyncio.create_task(repo.add(job))
    await asyncio.sleep(0.3)
    assert not adding.done(), "the write must wait for the lock, not fail"
    assert ticks >= 10, "the event loop must keep running while the write waits"
    other.execute("COMMIT")
    await asyncio.wait_for(adding, 10)
    ticking.cancel()
    found = await repo.get(job.id)
    assert found is not None and found.status is JobStatus.PENDING
    # Once the lock is free, transactions are back on the loop's thread.
    assert await database.run(_thread_of) == threading.get_ident()
    other.close()


async def test_another_threads_event_loop_uses_the_pool_not_the_loop_connection(database: Database) -> None:
    assert await database.run(_thread_of) == threading.get_ident()

    def elsewhere() -> tuple[int, int, str]:
        ran_on = asyncio.run(database.run(lambda tx: (threading.get_ident(), threading.current_thread().name)))
        return threading.get_ident(), *ran_on

    caller, other_loop_thread, name = await asyncio.to_thread(elsewhere)
    assert other_loop_thread != threading.get_ident()
    # Not the other loop's own thread either: the inline connection belongs to the first loop only.
    assert other_loop_thread != caller and name.startswith("db-sqlite")


async def test_the_write_ahead_log_is_checkpointed_by_the_pool_every_so_many_commits(
    database: Database, db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "_CHECKPOINT_EVERY", 10)
    await _add_inline(database)  # opens the inline connection, which never checkpoints by itself
    before = _size(db_file)
    for _ in range(8):
        await _add_inline(database)
    assert _size(db_file) == before, "commits stay in the write-ahead log until a checkpoint"
    await _add_inline(database)  # the tenth inline write
    for _ in range(100):
        if _size(db_file) > before:
            break
        await asyncio.sleep(0.02)
    assert _size(db_file) > before, "the checkpoint copied the new pages into the database file"


async def test_a_durable_write_commits_on_the_loop_and_syncs_the_log_before_it_returns(
    database: Database, db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _add_inline(database)  # the database in WAL mode, the inline connection open
    synced: list[tuple[str, int]] = []  # (the file synced, rows another connection saw committed by then)
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        with contextlib.closing(sqlite3.connect(db_file)) as other:
            committed = other.execute("SELECT count(*) FROM jobs").fetchone()[0]
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), committed))
        real_fdatasync(fd)

    monkeypatch.setattr(engine.os, "fdatasync", fdatasync)

    def where(tx: Tx) -> tuple[str, int]:
        return threading.current_thread().name, tx.rows("PRAGMA synchronous")[0][0]

    # An ordinary write: on the loop's connection (synchronous=NORMAL), the log left to the next checkpoint.
    assert await database.run(where) == (threading.current_thread().name, 1)
    assert synced == []

    # A durable one: committed there too, holding the write lock for no fsync; then the log
    # synced, with the new row in it, before run() returns.
    job, d = _job(), database.dialect
    await database.run(
        lambda tx: tx.execute(
            "INSERT INTO jobs (id, status, created_at, updated_at, attempts) VALUES (:id, 'PENDING', :at, :at, 0)",
            {"id": d.id(job.id), "at": d.at(job.created_at)},
        ),
        durable=True,
    )
    assert synced == [(f"{db_file}-wal", 2)]


async def test_a_durable_write_that_met_another_writers_lock_commits_synced_on_the_pool(
    database: Database, db_file: Path
) -> None:
    await _add_inline(database)

    def where(tx: Tx) -> tuple[str, int]:
        return threading.current_thread().name, tx.rows("PRAGMA synchronous")[0][0]

    with contextlib.closing(sqlite3.connect(db_file, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        running = asyncio.ensure_future(database.run(where, durable=True))
        await asyncio.sleep(0.2)
        other.execute("COMMIT")
    name, sync = await asyncio.wait_for(running, 10)
    assert name.startswith("db-sqlite") and sync == 2  # FULL: the log synced at the commit


async def test_an_accepted_upload_is_a_durable_write(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    real_run = database.run

    async def recording(fn: object, *, write: bool = True, durable: bool = False) -> object:
        calls.append(durable)
        return await real_run(fn, write=write, durable=durable)  # type: ignore[arg-type]

    monkeypatch.setattr(database, "run", recording)
    repo = SqlJobRepository(database)
    job = _job()
    await repo.add(job)
    assert calls == [True]
    await repo.get(job.id)
    assert calls == [True, False]
