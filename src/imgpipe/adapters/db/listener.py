"""``StatusListener``: PostgreSQL tells this process of every job status change, whoever wrote it.

Migration 20261128_0003 makes the database ``NOTIFY imgpipe_job_status`` with the job's id
when an UPDATE changes a job's status. An API process LISTENs on one connection of its own
(psycopg's async connection, on the event loop) and hands each id to the repository, which
wakes the long-polls waiting on that job: they answer as soon as a worker in any process
moves it, instead of at their next poll (0.1 s at first, then up to 1 s apart), and read
the database once per change instead of once per poll.

Notifications sent while the connection is down are lost. So whenever it is (re)made or
lost, ``on_gap`` runs and every waiter reads its job again; while it is down, ``listening``
is False and long-polls poll, until it is back (retried with a growing pause).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType
from uuid import UUID

__all__ = ["CHANNEL", "StatusListener"]

log = logging.getLogger(__name__)

CHANNEL = "imgpipe_job_status"
_FIRST_RETRY = 0.5
_LAST_RETRY = 30.0


class StatusListener:
    """Use as ``async with``: listens in a background task from entry to exit."""

    def __init__(self, conninfo: str, *, on_change: Callable[[UUID], None], on_gap: Callable[[], None]) -> None:
        self._conninfo = conninfo
        self._on_change = on_change
        self._on_gap = on_gap
        self._listening = False
        self._task: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        """True while every status change committed from now on will reach ``on_change``."""
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
        pause = _FIRST_RETRY
        while True:
            try:
                await self._listen()
            except Exception as exc:  # whatever it was, this task must live on: long-polls fall back meanwhile
                log.warning(
                    "status notifications lost; long-polls poll until they are back",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
            finally:
                if self._listening:
                    self._listening = False
                    pause = _FIRST_RETRY  # it worked until now: try again soon
                    self._on_gap()  # a change may have gone by unheard: every waiter reads again
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_RETRY)

    async def _listen(self) -> None:
        from psycopg import AsyncConnection

        conn = await AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=5, application_name="imgpipe-status"
        )
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            self._listening = True
            self._on_gap()  # changes committed before LISTEN took hold were not heard
            log.info("listening for status changes")
            async for note in conn.notifies():
                try:
                    job_id = UUID(note.payload)
                except ValueError:
                    continue  # not ours: anyone may NOTIFY on the channel
                self._on_change(job_id)
