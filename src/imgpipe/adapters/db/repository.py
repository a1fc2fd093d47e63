"""``SqlJobRepository``: the JobRepository port in plain SQL, one class for PostgreSQL and SQLite.

Each method is one transaction, run whole by ``Database.run``; every state change is
a conditional UPDATE, with the attempt number as the fencing token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from imgpipe.adapters.db.engine import Database, Tx
from imgpipe.adapters.db.listener import StatusListener
from imgpipe.adapters.db.rows import (
    INSERT_VARIANT,
    JOB_COLUMNS,
    VARIANT_COLUMNS,
    job_of,
    jobs_with_variants,
    variant_of,
    variant_params,
)
from imgpipe.domain.errors import DatabaseUnavailable, JobNotFound
from imgpipe.domain.job import ORIGINAL, Job, JobError, JobStatus, Variant, sources
from imgpipe.domain.ports import Page, StaleJob

__all__ = ["SqlJobRepository"]

log = logging.getLogger(__name__)
_FLUSH_DELAY = 0.05
_VERSIONS_KEPT = 10_000  # status-change counters of the most recently changed jobs

# The attempt number is the fencing token: a worker that lost its lease (and whose
# job another worker took over) can no longer write.
_HELD = "id = :id AND status = 'PROCESSING' AND attempts = :attempt"
# PENDING, or PROCESSING whose holder is gone: the states a claim may start from.
_CLAIMABLE = ", ".join(f"'{s.value}'" for s in sorted(sources(JobStatus.PROCESSING)))
_GET = (
    f"SELECT {', '.join('j.' + c for c in JOB_COLUMNS.split(', '))},"
    f" {', '.join('v.' + c for c in VARIANT_COLUMNS.split(', '))}"
    " FROM jobs j LEFT JOIN variants v ON v.job_id = j.id WHERE j.id = :id ORDER BY v.created_at, v.type"
)
_JOB_WIDTH = len(JOB_COLUMNS.split(", "))


def _parts(ids: list[Any], size: int = 500) -> list[list[Any]]:
    """``ids`` in slices: SQLite builds may cap a statement's parameters at 999 or 32,766 (a restart sweeps all)."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqlJobRepository:
    def __init__(
        self, database: Database, *, clock: Callable[[], datetime] = _utcnow, all_writes_here: bool = False
    ) -> None:
        """``all_writes_here``: no other process writes these jobs' status (the in-process queue)."""
        self._db = database
        self._d = database.dialect
        self._now = clock
        self._all_writes_here = all_writes_here
        self._listener: StatusListener | None = None
        self._gaps = 0  # times a status change of another process may have gone unheard
        self._confirmed: set[UUID] = set()
        self._flushing: asyncio.Task[None] | None = None
        self._versions: OrderedDict[UUID, int] = OrderedDict()
        self._changes: dict[UUID, tuple[asyncio.Event, int]] = {}  # the event, and how many wait on it

    def version(self, job_id: UUID) -> int:
        # After a gap in the notifications every version taken before it is out of date.
        return self._versions.get(job_id, 0) + (self._gaps << 32)

    @property
    def changes_pushed(self) -> bool:
        return self._all_writes_here or (self._listener is not None and self._listener.listening)

    def listen(self) -> AbstractAsyncContextManager[object]:
        """While entered, hear the status changes other processes write (PostgreSQL); nothing to hear on SQLite."""
        listener = self._db.status_listener(on_change=self._changed, on_gap=self._wake_all)
        if listener is None:
            return contextlib.nullcontext()
        self._listener = listener
        return listener

    async def changed_since(self, job_id: UUID, version: int, within: float) -> bool:
        # A counter evicted meanwhile reads 0: a spurious "changed", and the caller re-reads.
        if self.version(job_id) != version:
            return True
        event, waiting = self._changes.get(job_id, (asyncio.Event(), 0))
        self._changes[job_id] = (event, waiting + 1)
        try:
            await asyncio.wait_for(event.wait(), within)
            return True
        except TimeoutError:
            return False
        finally:
            current = self._changes.get(job_id)
            if current is not None and current[0] is event:  # not yet set and popped by a change
                if current[1] <= 1:
                    del self._changes[job_id]
                else:
                    self._changes[job_id] = (event, current[1] - 1)

    def _changed(self, job_id: UUID) -> None:
        """A status change of ``job_id`` was committed: count it and wake whoever waits on it."""
        self._versions[job_id] = self._versions.pop(job_id, 0) + 1
        if len(self._versions) > _VERSIONS_KEPT:
            self._versions.popitem(last=False)
        waited = self._changes.pop(job_id, None)
        if waited is not None:
            waited[0].set()

    def _wake_all(self) -> None:
        """The notifications had a gap: every waiter reads its job again."""
        self._gaps += 1
        waiting, self._changes = self._changes, {}
        for event, _ in waiting.values():
            event.set()

    async def ping(self) -> None:
        await self._db.run(lambda tx: tx.rows("SELECT 1"), write=False)

    async def add(self, job: Job) -> None:
        d = self._d
        row = {
            "id": d.id(job.id),
            "status": job.status.value,
            "created_at": d.at(job.created_at),
            "updated_at": d.at(job.updated_at),
            "attempts": job.attempts,
            "filename": job.filename,
        }
        made = [variant_params(d, job.id, v, job.created_at) for v in job.variants]

        def add(tx: Tx) -> None:
            tx.execute(
                "INSERT INTO jobs (id, status, created_at, updated_at, attempts, filename)"
                " VALUES (:id, :status, :created_at, :updated_at, :attempts, :filename)",
                row,
            )
            if made:
                tx.many(INSERT_VARIANT, made)

        await self._db.run(add, durable=True)  # an accepted upload survives a power loss

    async def get(self, job_id: UUID) -> Job | None:
        """One statement: the job joined with its variants."""
        d = self._d
        rows = await self._db.run(lambda tx: tx.rows(_GET, {"id": d.id(job_id)}), write=False)
        if not rows:
            return None
        found = [variant_of(r[_JOB_WIDTH:]) for r in rows if r[_JOB_WIDTH] is not None]
        return job_of(d, rows[0][:_JOB_WIDTH], found)

    async def list_recent(self, limit: int, before: tuple[datetime, UUID] | None = None) -> Page:
        d = self._d
        params: dict[str, Any] = {"limit": limit + 1}
        where = ""
        if before is not None:
            where = " WHERE (created_at, id) < (:at, :before)"
            params.update(at=d.at(before[0]), before=d.id(before[1]))
        query = f"SELECT {JOB_COLUMNS} FROM jobs{where} ORDER BY created_at DESC, id DESC LIMIT :limit"

        def page(tx: Tx) -> tuple[list[Job], bool]:
            rows = tx.rows(query, params)
            return jobs_with_variants(tx, rows[:limit]), len(rows) > limit

        found, more = await self._db.run(page, write=False)
        last = found[-1] if found else None
        return Page(jobs=found, next_cursor=(last.created_at, last.id) if more and last else None)

    async def mark_published(self, job_id: UUID) -> None:
        # Buffered: one UPDATE a moment later for a whole burst of uploads instead of a
        # transaction each. Losing the buffer in a crash only means a duplicate publish.
        self._confirmed.add(job_id)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_soon(), name="mark-published")

    async def _flush_soon(self) -> None:
        # Until the buffer stays empty: ids added during a write go out with the next one.
        while self._confirmed:
            await asyncio.sleep(_FLUSH_DELAY)
            await self.flush()

    async def flush(self) -> None:
        ids, self._confirmed = list(self._confirmed), set()
        if not ids:
            return
        d = self._d
        now = d.at(self._now())

        def published(tx: Tx) -> None:
            for part in _parts([d.id(i) for i in ids]):
                params: dict[str, Any] = {"now": now}
                where = d.in_("id", "ids", part, params)
                tx.execute(f"UPDATE jobs SET published_at = :now WHERE {where} AND status = 'PENDING'", params)

        try:
            await self._db.run(published)
        except DatabaseUnavailable as exc:
            log.warning(
                "could not record confirmed publishes; they may be published again",
                extra={"jobs": len(ids), "error": exc.message},
            )

    async def close(self) -> None:
        if self._flushing is not None and not self._flushing.done():
            self._flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        await self.flush()

    async def claim(self, job_id: UUID, *, lease: timedelta, takeover: bool) -> Job | None:
        d = self._d
        now = self._now()
        params = {"id": d.id(job_id), "now": d.at(now), "lease": d.at(now + lease)}
        statement = (
            "UPDATE jobs SET status = 'PROCESSING', attempts = attempts + 1, lease_until = :lease,"
            " started_at = COALESCE(started_at, :now), updated_at = :now"
            f" WHERE id = :id AND status IN ({_CLAIMABLE})"
            # Without a takeover, a PROCESSING job is claimable only once its holder's lease ran out.
            + ("" if takeover else " AND (status = 'PENDING' OR lease_until < :now)")
            + f" RETURNING {JOB_COLUMNS}"
        )

        def claim(tx: Tx) -> Job | None:
            rows = tx.rows(statement, params)
            if rows:
                return jobs_with_variants(tx, rows)[0]
            if not tx.rows("SELECT 1 FROM jobs WHERE id = :id", {"id": params["id"]}):
                raise JobNotFound(f"No job has the id {job_id}.")
            return None

        claimed = await self._db.run(claim)
        self._noted(job_id, claimed is not None)
        return claimed

    async def extend_lease(self, job_id: UUID, attempt: int, lease: timedelta) -> bool:
        d = self._d
        now = self._now()
        params = {"id": d.id(job_id), "attempt": attempt, "lease": d.at(now + lease), "now": d.at(now)}
        statement = f"UPDATE jobs SET lease_until = :lease, updated_at = :now WHERE {_HELD}"
        return bool(await self._db.run(lambda tx: tx.execute(statement, params)))

    async def complete(self, job_id: UUID, attempt: int, made: list[Variant]) -> bool:
        d = self._d
        now = self._now()
        params = {"id": d.id(job_id), "attempt": attempt, "now": d.at(now)}
        rows = [variant_params(d, job_id, v, now) for v in made]
        done = (
            f"UPDATE jobs SET status = 'DONE', finished_at = :now, updated_at = :now, lease_until = NULL WHERE {_HELD}"
        )

        def complete(tx: Tx) -> bool:
            if not tx.execute(done, params):
                return False
            # Only the attempt that moves the job to DONE records variants, and DONE is
            # final: there is never an older row of these types to replace.
            if rows:
                tx.many(INSERT_VARIANT, rows)
            return True

        return self._noted(job_id, await self._db.run(complete))

    async def fail(self, job_id: UUID, attempt: int, error: JobError) -> bool:
        d = self._d
        params = {
            "id": d.id(job_id),
            "attempt": attempt,
            "now": d.at(self._now()),
            "code": error.code,
            "message": error.message,
        }
        statement = (
            "UPDATE jobs SET status = 'FAILED', finished_at = :now, updated_at = :now, lease_until = NULL,"
            f" error_code = :code, error_message = :message WHERE {_HELD}"
        )
        return self._noted(job_id, bool(await self._db.run(lambda tx: tx.execute(statement, params))))

    async def release(self, job_id: UUID, attempt: int) -> bool:
        d = self._d
        params = {"id": d.id(job_id), "attempt": attempt, "now": d.at(self._now())}
        statement = (
            "UPDATE jobs SET status = 'PENDING', lease_until = NULL, published_at = NULL, updated_at = :now"
            f" WHERE {_HELD}"
        )
        return self._noted(job_id, bool(await self._db.run(lambda tx: tx.execute(statement, params))))

    def _noted(self, job_id: UUID, changed: bool) -> bool:
        """Count a status change this process committed, unless the listener hears it: counted twice, it wakes twice."""
        if changed and not (self._listener is not None and self._listener.listening):
            self._changed(job_id)
        return changed

    async def due_for_publish(
        self, *, unpublished_for: timedelta, pending_for: timedelta, limit: int | None
    ) -> list[UUID]:
        d = self._d
        now = self._now()
        params: dict[str, Any] = {
            "now": d.at(now),
            "unpublished": d.at(now - unpublished_for),
            "pending": d.at(now - pending_for),
        }
        query = (
            "SELECT id FROM jobs WHERE status = 'PENDING'"
            " AND ((published_at IS NULL AND updated_at < :unpublished) OR updated_at < :pending)"
            " ORDER BY created_at" + (f" LIMIT {int(limit)}" if limit is not None else "") + d.skip_locked
        )

        def due(tx: Tx) -> list[Any]:
            ids = [r[0] for r in tx.rows(query, params)]
            # Restart the clock so the next sweep does not publish them again at once.
            for part in _parts(ids):
                touch: dict[str, Any] = {"now": params["now"]}
                tx.execute(
                    f"UPDATE jobs SET updated_at = :now WHERE {d.in_('id', 'ids', part, touch)} AND status = 'PENDING'",
                    touch,
                )
            return ids

        return [d.read_id(i) for i in await self._db.run(due)]

    async def originals(self, job_ids: list[UUID]) -> dict[UUID, tuple[str, str]]:
        if not job_ids:
            return {}
        d = self._d

        def originals(tx: Tx) -> list[tuple[Any, ...]]:
            rows = []
            for part in _parts([d.id(i) for i in job_ids]):
                params: dict[str, Any] = {"original": ORIGINAL}
                where = d.in_("job_id", "ids", part, params)
                rows += tx.rows(f"SELECT job_id, bucket, key FROM variants WHERE type = :original AND {where}", params)
            return rows

        return {d.read_id(job_id): (bucket, key) for job_id, bucket, key in await self._db.run(originals, write=False)}

    async def expired_leases(self, limit: int | None, *, all_processing: bool = False) -> list[StaleJob]:
        d = self._d
        params = {"now": d.at(self._now())}
        query = (
            "SELECT id, attempts FROM jobs WHERE status = 'PROCESSING'"
            + ("" if all_processing else " AND lease_until < :now")
            + " ORDER BY lease_until"
            + (f" LIMIT {int(limit)}" if limit is not None else "")
        )
        rows = await self._db.run(lambda tx: tx.rows(query, params), write=False)
        return [StaleJob(id=d.read_id(r[0]), attempts=r[1]) for r in rows]
