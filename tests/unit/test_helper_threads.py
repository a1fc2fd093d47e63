"""Helper threads (``asyncio.to_thread``'s and the database's) never preempt the event loop's thread when they wake."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from imgpipe import serve
from imgpipe.adapters.db.engine import Database, Dialect
from imgpipe.helper_threads import helper_pool

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling classes")


def _policy() -> int:
    return os.sched_getscheduler(0)


def test_a_helper_pools_threads_run_as_batch_and_leave_the_caller_as_it_was() -> None:
    before = _policy()
    with helper_pool(2, name="t") as pool:
        assert {pool.submit(_policy).result() for _ in range(4)} == {os.SCHED_BATCH}
    assert _policy() == before  # the initializer ran on the pool's threads only


def test_a_serving_processs_to_thread_runs_on_helper_threads() -> None:
    async def where() -> int:
        return await asyncio.to_thread(_policy)

    assert serve._asyncio_run(where()) == os.SCHED_BATCH


async def test_the_databases_pool_transactions_run_on_helper_threads() -> None:
    database = Database(Dialect("sqlite"), lambda: sqlite3.connect(":memory:", check_same_thread=False), threads=1)
    try:
        assert await database.run(lambda tx: _policy(), write=False) == os.SCHED_BATCH
    finally:
        await database.dispose()
