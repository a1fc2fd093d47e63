"""``StatusListener``: PostgreSQL tells this process of every job status change, whoever wrote it.

Migration 20261128_0003 makes the database ``NOTIFY imgpipe_job_status`` with the job's id
when an UPDATE changes a job's status. An API process LISTENs on one connection of its own
(psycopg's async connection, on the event loop) and hands each id to the repository, which
wakes the long-polls waiting on that job: they answer as soon as a worker in any process
moves it, instead of at their next poll (0.1 s at first, then up to 1 s apart), and read
the database once per change instead of once per poll.

``listening`` is a promise that changes arrive, so it is proven, not assumed: it turns True
only once the trigger is in place (a database not yet migrated announces nothing) and a
probe this connection NOTIFYs to itself has come back (a pooler in transaction mode, or a
proxy, may swallow notifications). A probe goes out every ``PROBE_SECONDS``; one that does
not come back within the next round counts as a lost connection, as does a dropped one
(TCP keepalives find a dead peer). Notifications sent while nobody listened are lost: so
whenever the connection is proven or lost, ``on_gap`` runs and every waiter reads its job
again; while there is no proven connection long-polls poll, and it is retried with a growing
pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any
from uuid import UUID

__all__ = ["CHANNEL", "PROBE_SECONDS", "StatusListener"]

log = logging.getLogger(__name__)

CHANNEL = "imgpipe_job_status"
TRIGGER = "jobs_status_changed"
PROBE_SECONDS = 15.0
_FIRST_RETRY = 0.5
_LAST_RETRY = 30.0
_STEADY = 30.0  # a connection that lasted this long was a good one: retry soon after it drops
# Dead peers are noticed by TCP within about a minute even between probes.
_KEEPALIVES: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


class _Deaf(Exception):
    """The connection is up, but status changes would not reach it."""


class StatusListener:
    """Use as ``async with``: listens in a background task from entry to exit."""

    def __init__(
        self,
        conninfo: str,
        *,
        on_change: Callable[[UUID], None],
        on_gap: Callable[[], None],
        probe_seconds: float = PROBE_SECONDS,
    ) -> None:
        self._conninfo = conninfo
        self._on_change = on_change
        self._on_gap = on_gap
        self._probe_seconds = probe_seconds
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        """True while status changes are proven to reach ``on_change``."""
        return self._listening

    async def __aenter__(self) -> StatusListener:
        self._task = asyncio.create_task(self._run(), name="status-listener")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        import psycopg

        loop = asyncio.get_running_loop()
        pause = _FIRST_RETRY
        while True:
            started = loop.time()
            try:
                await self._listen()
            except (psycopg.Error, OSError, _Deaf) as exc:
                log.warning("status changes not heard; long-polls poll until they are", extra={"error": str(exc)})
            except Exception:  # a bug here must not end the retries: long-polls fall back meanwhile
                log.exception("status listener failed; long-polls poll until it is back")
            finally:
                if self._listening:
                    self._listening = False
                    self._on_gap()  # a change may have gone by unheard: every waiter reads again
            if loop.time() - started >= _STEADY:
                pause = _FIRST_RETRY
            await asyncio.sleep(pause * random.uniform(0.8, 1.2))  # jitter: many API processes do not retry in step
            pause = min(pause * 2, _LAST_RETRY)

    async def _listen(self) -> None:
        from psycopg import AsyncConnection

        conn = await AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=5, application_name="imgpipe-status", **_KEEPALIVES
        )
        async with conn:
            found = await conn.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", (TRIGGER,))
            if await found.fetchone() is None:
                raise _Deaf("the database announces no status changes: run `imgpipe migrate`")
            await conn.execute(f"LISTEN {CHANNEL}")
            probe: str | None = await self._probe(conn)
            while True:
                async for note in conn.notifies(timeout=self._probe_seconds):
                    if note.payload == probe:
                        probe = None
                        if not self._listening:
                            self._listening = True
                            self._on_gap()  # changes committed before this were not heard
                            log.info("listening for status changes")
                        continue
                    try:
                        job_id = UUID(note.payload)
                    except ValueError:
                        continue  # another listener's probe, or not ours: anyone may NOTIFY
                    self._on_change(job_id)
                if probe is not None:
                    raise _Deaf(f"a probe sent to itself did not come back within {self._probe_seconds:g} s")
                probe = await self._probe(conn)

    @staticmethod
    async def _probe(conn: Any) -> str:
        token = f"probe-{uuid.uuid4().hex}"
        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, token))
        return token
