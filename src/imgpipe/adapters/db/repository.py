"""``SqlJobRepository``: the JobRepository port on SQLAlchemy Core, one class for PostgreSQL and SQLite.

Each method is one transaction, run whole by ``Database.run``; every state change is
a conditional UPDATE, with the attempt number as the fencing token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, func, insert, or_, select, true, tuple_, update
from sqlalchemy.engine import Connection

from imgpipe.adapters.db.engine import Database
from imgpipe.adapters.db.rows import jobs_with_variants, variant_row
from imgpipe.adapters.db.tables import jobs, variants
from imgpipe.domain.errors import DatabaseUnavailable, JobNotFound
from imgpipe.domain.job import Job, JobError, JobStatus, Variant, sources
from imgpipe.domain.ports import Page, StaleJob

__all__ = ["SqlJobRepository"]

PENDING, PROCESSING, DONE, FAILED = (s.value for s in JobStatus)
log = logging.getLogger(__name__)
_FLUSH_DELAY = 0.05


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _held(job_id: UUID, attempt: int) -> tuple[Any, ...]:
    # The attempt number is the fencing token: a worker that lost its lease (and whose
    # job another worker took over) can no longer write.
    return (jobs.c.id == job_id, jobs.c.status == PROCESSING, jobs.c.attempts == attempt)


def _values(statuses: frozenset[JobStatus]) -> list[str]:
    return sorted(s.value for s in statuses)


def _changed(statement: Any) -> Callable[[Connection], bool]:
    return lambda conn: bool(conn.execute(statement).rowcount)


class SqlJobRepository:
    def __init__(self, database: Database, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._db = database
        self._now = clock
        self._confirmed: set[UUID] = set()
        self._flushing: asyncio.Task[None] | None = None

    async def ping(self) -> None:
        await self._db.run(lambda conn: conn.execute(select(1)).scalar())

    async def add(self, job: Job) -> None:
        row = {
            "id": job.id,
            "status": job.status.value,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "attempts": job.attempts,
            "filename": job.filename,
        }

        def add(conn: Connection) -> None:
            conn.execute(insert(jobs), row)
            if job.variants:
                conn.execute(insert(variants), [variant_row(job.id, v, job.created_at) for v in job.variants])

        await self._db.run(add)

    async def get(self, job_id: UUID) -> Job | None:
        def get(conn: Connection) -> Job | None:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
            return jobs_with_variants(conn, [row])[0] if row is not None else None

        return await self._db.run(get)

    async def list_recent(self, limit: int, before: tuple[datetime, UUID] | None = None) -> Page:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(tuple_(jobs.c.created_at, jobs.c.id) < tuple_(*before))

        def page(conn: Connection) -> tuple[list[Job], bool]:
            rows = list(conn.execute(query).mappings())
            return jobs_with_variants(conn, rows[:limit]), len(rows) > limit

        found, more = await self._db.run(page)
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
        statement = update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == PENDING).values(published_at=self._now())
        try:
            await self._db.run(_changed(statement))
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
        now = self._now()
        holder_gone = true() if takeover else jobs.c.lease_until < now
        statement = (
            update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.status.in_(_values(sources(JobStatus.PROCESSING))),  # PENDING, or PROCESSING...
                or_(jobs.c.status == PENDING, holder_gone),  # ...whose holder is gone
            )
            .values(
                status=PROCESSING,
                attempts=jobs.c.attempts + 1,
                lease_until=now + lease,
                started_at=func.coalesce(jobs.c.started_at, now),
                updated_at=now,
            )
            .returning(*jobs.c)
        )

        def claim(conn: Connection) -> Job | None:
            row = conn.execute(statement).mappings().first()
            if row is not None:
                return jobs_with_variants(conn, [row])[0]
            if conn.execute(select(jobs.c.id).where(jobs.c.id == job_id)).first() is None:
                raise JobNotFound(f"No job has the id {job_id}.")
            return None

        return await self._db.run(claim)

    async def extend_lease(self, job_id: UUID, attempt: int, lease: timedelta) -> bool:
        now = self._now()
        return await self._db.run(
            _changed(update(jobs).where(*_held(job_id, attempt)).values(lease_until=now + lease, updated_at=now))
        )

    async def complete(self, job_id: UUID, attempt: int, made: list[Variant]) -> bool:
        now = self._now()
        done = update(jobs).where(*_held(job_id, attempt)).values(
            status=DONE, finished_at=now, updated_at=now, lease_until=None
        )

        def complete(conn: Connection) -> bool:
            if not conn.execute(done).rowcount:
                return False
            # Only the attempt that moves the job to DONE records variants, and DONE is
            # final: there is never an older row of these types to replace.
            if made:
                conn.execute(insert(variants), [variant_row(job_id, v, now) for v in made])
            return True

        return await self._db.run(complete)

    async def fail(self, job_id: UUID, attempt: int, error: JobError) -> bool:
        now = self._now()
        return await self._db.run(
            _changed(
                update(jobs)
                .where(*_held(job_id, attempt))
                .values(
                    status=FAILED,
                    finished_at=now,
                    updated_at=now,
                    lease_until=None,
                    error_code=error.code,
                    error_message=error.message,
                )
            )
        )

    async def release(self, job_id: UUID, attempt: int) -> bool:
        now = self._now()
        return await self._db.run(
            _changed(
                update(jobs)
                .where(*_held(job_id, attempt))
                .values(status=PENDING, lease_until=None, published_at=None, updated_at=now)
            )
        )

    async def due_for_publish(
        self, *, unpublished_for: timedelta, pending_for: timedelta, limit: int | None
    ) -> list[UUID]:
        now = self._now()
        query = (
            select(jobs.c.id)
            .where(
                jobs.c.status == PENDING,
                or_(
                    and_(jobs.c.published_at.is_(None), jobs.c.updated_at < now - unpublished_for),
                    jobs.c.updated_at < now - pending_for,
                ),
            )
            .order_by(jobs.c.created_at)
            .limit(limit)
            # Several workers sweep at once: each due job goes to one of them (PostgreSQL;
            # SQLite has a single writer anyway).
            .with_for_update(skip_locked=True)
        )

        def due(conn: Connection) -> list[UUID]:
            ids = list(conn.execute(query).scalars())
            if ids:
                # Restart the clock so the next sweep does not publish them again at once.
                conn.execute(update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == PENDING).values(updated_at=now))
            return ids

        return await self._db.run(due)

    async def expired_leases(self, limit: int | None, *, all_processing: bool = False) -> list[StaleJob]:
        expired = true() if all_processing else jobs.c.lease_until < self._now()
        query = (
            select(jobs.c.id, jobs.c.attempts)
            .where(jobs.c.status == PROCESSING, expired)
            .order_by(jobs.c.lease_until)
            .limit(limit)
        )
        return await self._db.run(lambda conn: [StaleJob(id=r.id, attempts=r.attempts) for r in conn.execute(query)])
