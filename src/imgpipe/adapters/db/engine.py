"""Where a transaction runs: PostgreSQL on its async driver, SQLite on its own threads, one hop per transaction.

Repository code is written once, as plain functions over a SQLAlchemy ``Connection``;
``Database.run`` executes one of them inside one transaction. With PostgreSQL that is
``AsyncConnection.run_sync`` on psycopg's async driver. SQLite is an in-process file,
so its transaction runs whole on a small thread pool: one thread hop per transaction,
instead of one per statement (and per cursor call) as an async SQLite driver needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from imgpipe.domain.errors import DatabaseUnavailable

__all__ = ["AsyncDatabase", "Database", "ThreadDatabase", "open_database"]

T = TypeVar("T")


@contextmanager
def _unavailable_as_domain_error() -> Iterator[None]:
    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
        raise DatabaseUnavailable(f"The database did not answer: {type(exc).__name__}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailable("The database connection was lost.") from exc
        raise


class AsyncDatabase:
    """PostgreSQL through psycopg's async driver."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction; ``DatabaseUnavailable`` if the server is away."""
        with _unavailable_as_domain_error():
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn)

    async def dispose(self) -> None:
        await self.engine.dispose()


class ThreadDatabase:
    """SQLite through the standard library driver, each transaction whole on a pool thread."""

    def __init__(self, engine: Engine, threads: int = 4) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sqlite")

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        with _unavailable_as_domain_error(), self.engine.begin() as conn:
            return fn(conn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction; ``DatabaseUnavailable`` if the file cannot be used."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._transaction, fn)

    async def dispose(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()


Database = AsyncDatabase | ThreadDatabase


def open_database(url: str) -> Database:
    """Build (but do not connect) the database for ``url`` (``postgresql+psycopg://`` or ``sqlite://``)."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Pool connections move between the pool's threads, one at a time.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return ThreadDatabase(engine)
    return AsyncDatabase(
        create_async_engine(
            url,
            pool_size=5,
            max_overflow=5,
            pool_pre_ping=True,
            pool_timeout=5,
            connect_args={"connect_timeout": 5},
        )
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits for the
    # writer instead of failing; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
