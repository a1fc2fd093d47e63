"""Where a transaction runs: each one whole on a pool thread, on that thread's own DBAPI connection.

Repository code is plain functions over a ``Tx``, written once in SQL both databases
speak. ``Database.run`` executes one inside one transaction: psycopg (sync) for
PostgreSQL, the standard library's sqlite3 for SQLite. One thread hop per transaction;
no ORM, no statement building and no greenlets on the way: measured on the server
stack, SQLAlchemy's async engine with psycopg cost 7 ms of CPU per upload in the API
and 6 in the worker. SQLAlchemy stays for what it is good at: Alembic migrations.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from imgpipe.domain.errors import DatabaseUnavailable

__all__ = ["Database", "Dialect", "Tx", "open_database"]

T = TypeVar("T")
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass(frozen=True)
class Dialect:
    """What differs between the two databases: placeholders, and how ids and times are stored."""

    name: str  # "postgresql" | "sqlite"

    @property
    def sqlite(self) -> bool:
        return self.name == "sqlite"

    def sql(self, text: str) -> str:
        """SQL written with ``:name`` placeholders, in this driver's style."""
        return text if self.sqlite else _pyformat(text)

    def id(self, value: UUID) -> Any:
        # SQLAlchemy's Uuid type, which made the schema, keeps 32 hex digits on SQLite.
        return value.hex if self.sqlite else value

    def read_id(self, value: Any) -> UUID:
        return UUID(hex=value) if self.sqlite else value

    def at(self, value: datetime | None) -> Any:
        """An aware datetime as stored: SQLite keeps naive UTC text, sortable as text."""
        if value is None or not self.sqlite:
            return value
        if value.tzinfo is None:
            raise ValueError("imgpipe stores aware datetimes only")
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def read_at(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if self.sqlite:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    def in_(self, column: str, name: str, values: Sequence[Any], params: dict[str, Any]) -> str:
        """``column IN (...)`` for ``values`` (already stored-form), adding the parameters."""
        if not self.sqlite:
            params[name] = list(values)
            return f"{column} = ANY(:{name})"
        names = [f"{name}{i}" for i in range(len(values))]
        params.update(zip(names, values, strict=True))
        return f"{column} IN ({', '.join(':' + n for n in names)})"

    @property
    def skip_locked(self) -> str:
        # Several workers sweep at once: each due row goes to one of them. SQLite has one writer anyway.
        return "" if self.sqlite else " FOR UPDATE SKIP LOCKED"


@cache
def _pyformat(text: str) -> str:
    return _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))


class Tx:
    """One transaction's statements."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """Run one statement; the number of rows it changed."""
        self._cursor.execute(self.dialect.sql(sql), params or {})
        return int(self._cursor.rowcount)

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self._cursor.execute(self.dialect.sql(sql), params or {})
        return list(self._cursor.fetchall())

    def many(self, sql: str, params: list[dict[str, Any]]) -> None:
        self._cursor.executemany(self.dialect.sql(sql), params)


class Database:
    """A small thread pool; each thread keeps one connection, made on first use and remade after a failure."""

    def __init__(self, dialect: Dialect, connect: Callable[[], Any], *, threads: int) -> None:
        self.dialect = dialect
        self._connect = connect
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"db-{dialect.name}")
        self._local = threading.local()
        self._opened: set[Any] = set()
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[Tx], T], *, write: bool = True) -> T:
        """Run ``fn`` in one transaction; ``DatabaseUnavailable`` if the database is away."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._transaction, fn, write)

    def _transaction(self, fn: Callable[[Tx], T], write: bool) -> T:
        conn = getattr(self._local, "conn", None)
        reused = conn is not None
        try:
            if conn is None:
                conn = self._open()
            return self._attempt(conn, fn, write)
        except _Stale:
            if not reused:
                raise DatabaseUnavailable("The database connection broke during the transaction.") from None
        # A kept connection the server dropped meanwhile (a restart, an idle timeout):
        # nothing was committed on it, so the transaction runs once more on a new one.
        return self._attempt(self._open(), fn, write)

    def _open(self) -> Any:
        try:
            conn = self._connect()
        except Exception as exc:
            if isinstance(exc, sqlite3.Error | OSError) or _is_unavailable(exc):
                raise DatabaseUnavailable(f"The database did not answer: {_why(exc)}") from exc
            raise
        self._local.conn = conn
        with self._lock:
            self._opened.add(conn)
        return conn

    def _attempt(self, conn: Any, fn: Callable[[Tx], T], write: bool) -> T:
        committing = False
        try:
            cursor = conn.cursor()
            try:
                if self.dialect.sqlite:
                    # IMMEDIATE takes the write lock up front: a deferred transaction that
                    # reads, then writes, can fail with "database is locked" despite busy_timeout.
                    cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                result = fn(Tx(cursor, self.dialect))
                committing = True
                conn.commit()
                return result
            finally:
                cursor.close()
        except BaseException as exc:
            broken = _lost(conn)
            if broken:
                self._drop(conn)
            else:
                _rollback(conn)
            if broken and not committing:
                raise _Stale() from exc
            if broken or _is_unavailable(exc):
                raise DatabaseUnavailable(f"The database did not answer: {_why(exc)}") from exc
            raise

    def _drop(self, conn: Any) -> None:
        self._local.conn = None
        with self._lock:
            self._opened.discard(conn)
        try:
            conn.close()
        except Exception:  # it is broken already; closing is a courtesy
            pass

    async def dispose(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            opened, self._opened = list(self._opened), set()
        for conn in opened:
            try:
                conn.close()
            except Exception:  # closing is best effort
                continue


class _Stale(Exception):
    """The connection broke before anything was committed on it."""


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # the statement's own error is the one to report
        pass


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _lost(conn: Any) -> bool:
    """The connection itself is gone (server restarted, network cut), not just the statement failed."""
    return bool(getattr(conn, "broken", False) or getattr(conn, "closed", False))


def _is_unavailable(exc: BaseException) -> bool:
    """A failure of the database being there (locked, unreachable, shutting down), not of the SQL."""
    if isinstance(exc, sqlite3.OperationalError | OSError):
        return True
    import psycopg  # only reached on PostgreSQL errors' way out

    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def open_database(url: str) -> Database:
    """Build (but do not connect) the database for ``url`` (``postgresql+psycopg://`` or ``sqlite:///``)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ":memory:"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return Database(Dialect("sqlite"), lambda: _sqlite(path), threads=4)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return Database(Dialect("postgresql"), lambda: _postgres(conninfo), threads=8)


def _sqlite(path: str) -> sqlite3.Connection:
    # isolation_level=None: imgpipe says BEGIN itself. Connections stay on their pool thread.
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    # WAL lets the API read while a worker writes; busy_timeout waits for the writer
    # instead of failing; foreign keys are off by default in SQLite.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _postgres(conninfo: str) -> Any:
    import psycopg

    # Statements are prepared on the server after a few uses (psycopg's prepare_threshold).
    return psycopg.connect(conninfo, connect_timeout=5, application_name="imgpipe")
