"""Where a transaction runs: whole, on one DBAPI connection, either on the event loop or on a pool thread.

Repository code is plain functions over a ``Tx``, written once in SQL both databases
speak. ``Database.run`` executes one inside one transaction: psycopg (sync) for
PostgreSQL, the standard library's sqlite3 for SQLite. No ORM, no statement building
and no greenlets on the way: measured on the server stack, SQLAlchemy's async engine
with psycopg cost 7 ms of CPU per upload in the API and 6 in the worker. SQLAlchemy
stays for what it is good at: Alembic migrations.

PostgreSQL transactions wait on the network, so each runs on a pool thread that keeps
its own connection. SQLite is a library call on a local file, a few tens of
microseconds: there the hop to a thread (and the GIL hand-offs it brings) cost more
than the transaction, so SQLite transactions run on the event loop's thread, on a
connection that never waits for a lock. When another process holds the write lock,
the transaction goes to a pool thread and waits there; checkpoints, which fsync, run
there too, as does the sync of the write-ahead log after a commit that must be durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from imgpipe.adapters.db.listener import StatusListener
from imgpipe.domain.errors import DatabaseUnavailable
from imgpipe.helper_threads import helper_pool

__all__ = ["Database", "Dialect", "Tx", "open_database"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_CHECKPOINT_EVERY = 200  # inline commits between two checkpoints (SQLite's own default is about 1,000 pages)
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
    """A small thread pool; each thread keeps one connection, made on first use and remade after a failure.

    With ``connect_inline`` (SQLite), transactions run on the calling event loop's thread
    first, on one more connection, and go to the pool only when that one meets a lock.
    """

    def __init__(
        self,
        dialect: Dialect,
        connect: Callable[[], Any],
        *,
        threads: int,
        connect_inline: Callable[[], Any] | None = None,
        log_file: Path | None = None,
        conninfo: str | None = None,
    ) -> None:
        """``connect_inline``: a connection for the event loop's thread, one that fails at once when busy.
        ``log_file``: SQLite's write-ahead log, synced after an inline commit that must be durable.
        ``conninfo``: PostgreSQL's connection string (with its password: it stays in here)."""
        self.dialect = dialect
        self._conninfo = conninfo
        self._connect = connect
        self._connect_inline = connect_inline
        self._log_file = log_file
        self._pool = helper_pool(threads, name=f"db-{dialect.name}")
        self._local = threading.local()
        self._opened: set[Any] = set()
        self._lock = threading.Lock()
        self._inline_conn: Any = None
        # The first event loop thread to run a transaction owns the inline connection.
        self._inline_thread: int | None = None
        self._inline_writes = 0
        self._checkpoint: asyncio.Future[Any] | None = None

    def status_listener(
        self, *, on_change: Callable[[UUID], None], on_gap: Callable[[], None]
    ) -> StatusListener | None:
        """A listener for the status changes any process writes; None where the database announces none (SQLite)."""
        if self._conninfo is None:
            return None
        return StatusListener(self._conninfo, on_change=on_change, on_gap=on_gap)

    async def run(self, fn: Callable[[Tx], T], *, write: bool = True, durable: bool = False) -> T:
        """Run ``fn`` in one transaction; ``DatabaseUnavailable`` if the database is away.

        ``durable``: the commit must survive a power loss before this returns (an accepted
        upload). PostgreSQL commits are, and so are those of SQLite's pool connections
        (synchronous=FULL). The inline connection's (synchronous=NORMAL) survive a process
        crash but reach the disk only at the next checkpoint: after a durable one, a pool
        thread syncs the write-ahead log, outside the write lock, which the next writer
        takes at once instead of waiting (and sleeping in SQLite's busy handler) for an fsync.
        """
        loop = asyncio.get_running_loop()
        if self._connect_inline is not None and self._inline_thread in (None, threading.get_ident()):
            self._inline_thread = threading.get_ident()
            try:
                result = self._transaction(fn, write, inline=True)
            except _Busy:
                pass  # another process holds the lock: wait for it on a pool thread
            else:
                if write:
                    self._after_inline_write(loop)
                if durable:
                    await loop.run_in_executor(self._pool, self._sync_log)
                return result
        return await loop.run_in_executor(self._pool, self._transaction, fn, write)

    def _sync_log(self) -> None:
        """Make the inline connection's commits so far survive a power loss, as synchronous=FULL would have.

        A disk that fails the sync (EIO) leaves the commit made but not known to be on disk: the
        caller hears DatabaseUnavailable, as from a failed commit, and treats the write as not
        done (an upload's original is removed); a row that survives anyway fails its job.
        """
        if self._log_file is None:
            return  # an in-memory database: nothing reaches a disk
        try:
            fd = os.open(self._log_file, os.O_RDONLY)
        except FileNotFoundError:
            return  # SQLite removes the log only once all of it is in the database file, synced
        except OSError as exc:
            raise DatabaseUnavailable(f"The database's write-ahead log could not be opened: {exc.strerror}") from exc
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise DatabaseUnavailable(f"The database's write-ahead log could not be synced: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def _after_inline_write(self, loop: asyncio.AbstractEventLoop) -> None:
        # The inline connection never checkpoints (an fsync on the event loop): every so
        # many commits, a pool thread copies the write-ahead log back into the database.
        self._inline_writes += 1
        if self._inline_writes % _CHECKPOINT_EVERY == 0 and (self._checkpoint is None or self._checkpoint.done()):
            self._checkpoint = loop.run_in_executor(self._pool, self._wal_checkpoint)

    def _wal_checkpoint(self) -> None:
        try:
            conn = getattr(self._local, "conn", None) or self._open()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (DatabaseUnavailable, sqlite3.Error) as exc:  # the next one catches up
            log.warning("SQLite checkpoint skipped", extra={"error": str(exc)})

    def _transaction(self, fn: Callable[[Tx], T], write: bool, *, inline: bool = False) -> T:
        conn = self._inline_conn if inline else getattr(self._local, "conn", None)
        reused = conn is not None
        try:
            if conn is None:
                conn = self._open(inline=inline)
            return self._attempt(conn, fn, write, inline=inline)
        except _Stale:
            if not reused:
                raise DatabaseUnavailable("The database connection broke during the transaction.") from None
        # A kept connection the server dropped meanwhile (a restart, an idle timeout):
        # nothing was committed on it, so the transaction runs once more on a new one.
        return self._attempt(self._open(inline=inline), fn, write, inline=inline)

    def _open(self, *, inline: bool = False) -> Any:
        connect = self._connect_inline if inline and self._connect_inline else self._connect
        try:
            conn = connect()
        except Exception as exc:
            if inline and _busy(exc):
                raise _Busy() from exc
            if isinstance(exc, sqlite3.Error | OSError) or _is_unavailable(exc):
                raise DatabaseUnavailable(f"The database did not answer: {_why(exc)}") from exc
            raise
        if inline:
            self._inline_conn = conn
        else:
            self._local.conn = conn
        with self._lock:
            self._opened.add(conn)
        return conn

    def _attempt(self, conn: Any, fn: Callable[[Tx], T], write: bool, *, inline: bool = False) -> T:
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
                self._drop(conn, inline=inline)
            else:
                _rollback(conn)
            if inline and not broken and _busy(exc):
                raise _Busy() from exc  # rolled back, nothing committed: safe to run again elsewhere
            if broken and not committing:
                raise _Stale() from exc
            if broken or _is_unavailable(exc):
                raise DatabaseUnavailable(f"The database did not answer: {_why(exc)}") from exc
            raise

    def _drop(self, conn: Any, *, inline: bool = False) -> None:
        if inline:
            self._inline_conn = None
        else:
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


class _Busy(Exception):
    """The inline connection met a lock another connection holds; nothing was committed."""


def _busy(exc: BaseException) -> bool:
    # The primary code is the low byte of the extended one (SQLITE_BUSY_SNAPSHOT is a BUSY, too).
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return isinstance(exc, sqlite3.OperationalError) and code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


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
        return Database(
            Dialect("sqlite"),
            lambda: _sqlite(path),
            threads=4,
            connect_inline=lambda: _sqlite(path, inline=True),
            log_file=None if path == ":memory:" else Path(f"{path}-wal"),
        )
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return Database(Dialect("postgresql"), lambda: _postgres(conninfo), threads=8, conninfo=conninfo)


def _sqlite(path: str, *, inline: bool = False) -> sqlite3.Connection:
    """A pool thread's connection waits for another writer and syncs every commit; the event loop's fails at
    once, never checkpoints and leaves its commits to the next checkpoint's sync, or ``Database._sync_log``'s."""
    # isolation_level=None: imgpipe says BEGIN itself. Connections stay on their pool thread.
    conn = sqlite3.connect(path, timeout=0 if inline else 30, isolation_level=None, check_same_thread=False)
    # WAL lets the API read while a worker writes; busy_timeout waits for the writer
    # instead of failing; foreign keys are off by default in SQLite.
    own: tuple[str, ...]
    if inline:
        own = ("busy_timeout=0", "wal_autocheckpoint=0", "synchronous=NORMAL")
    else:
        own = ("busy_timeout=30000", "synchronous=FULL")
    for pragma in (*own, "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    # Setting the mode takes a lock even when it changes nothing: only a new database needs it.
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    return conn


def _postgres(conninfo: str) -> Any:
    import psycopg

    # Statements are prepared on the server after a few uses (psycopg's prepare_threshold).
    return psycopg.connect(conninfo, connect_timeout=5, application_name="imgpipe")
