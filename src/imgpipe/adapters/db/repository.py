"""``SqlJobRepository``: the JobRepository port on SQLAlchemy Core, one class for PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, insert, or_, select, true, tuple_, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from imgpipe.adapters.db.tables import jobs, variants
from imgpipe.domain.errors import DatabaseUnavailable, JobNotFound
from imgpipe.domain.job import Job, JobError, JobStatus, Variant
from imgpipe.domain.ports import Page, StaleJob

__all__ = ["SqlJobRepository"]

PENDING, PROCESSING, DONE, FAILED = (s.value for s in JobStatus)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqlJobRepository:
    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._now = clock

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self._engine.begin() as conn:
                yield conn
        except (OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
            raise DatabaseUnavailable(f"The database did not answer: {type(exc).__name__}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise DatabaseUnavailable("The database connection was lost.") from exc
            raise

    async def ping(self) -> None:
        async with self._tx() as conn:
            await conn.execute(select(1))

    async def add(self, job: Job) -> None:
        async with self._tx() as conn:
            await conn.execute(
                insert(jobs).values(
                    id=job.id,
                    status=job.status.value,
                    created_at=job.created_at,
                    updated_at=job.updated_at,
                    attempts=job.attempts,
                    filename=job.filename,
                )
            )
            if job.variants:
                await conn.execute(insert(variants), [_variant_row(job.id, v, job.created_at) for v in job.variants])

    async def get(self, job_id: UUID) -> Job | None:
        async with self._tx() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).mappings().first()
            if row is None:
                return None
            return (await self._with_variants(conn, [row]))[0]

    async def list_recent(self, limit: int, before: tuple[datetime, UUID] | None = None) -> Page:
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(tuple_(jobs.c.created_at, jobs.c.id) < tuple_(*before))
        async with self._tx() as conn:
            rows = list((await conn.execute(query)).mappings())
            page = await self._with_variants(conn, rows[:limit])
        more = len(rows) > limit
        last = page[-1] if page else None
        return Page(jobs=page, next_cursor=(last.created_at, last.id) if more and last else None)

    async def mark_published(self, job_id: UUID) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == PENDING)
                .values(published_at=self._now())
            )

    async def claim(self, job_id: UUID, *, lease: timedelta, takeover: bool) -> Job | None:
        now = self._now()
        holder_gone = or_(jobs.c.lease_until < now, true()) if takeover else jobs.c.lease_until < now
        async with self._tx() as conn:
            row = (
                await conn.execute(
                    update(jobs)
                    .where(
                        jobs.c.id == job_id,
                        or_(jobs.c.status == PENDING, and_(jobs.c.status == PROCESSING, holder_gone)),
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
            ).mappings().first()
            if row is None:
                exists = (await conn.execute(select(jobs.c.id).where(jobs.c.id == job_id))).first()
                if exists is None:
                    raise JobNotFound(f"No job has the id {job_id}.")
                return None
            return (await self._with_variants(conn, [row]))[0]

    async def extend_lease(self, job_id: UUID, attempt: int, lease: timedelta) -> bool:
        now = self._now()
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs).where(*self._held(job_id, attempt)).values(lease_until=now + lease, updated_at=now)
            )
            return bool(result.rowcount)

    async def complete(self, job_id: UUID, attempt: int, made: list[Variant]) -> bool:
        now = self._now()
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(*self._held(job_id, attempt))
                .values(status=DONE, finished_at=now, updated_at=now, lease_until=None)
            )
            if not result.rowcount:
                return False
            # A retried attempt may have recorded nothing, or the same thing: replace.
            types = [v.type for v in made]
            await conn.execute(delete(variants).where(variants.c.job_id == job_id, variants.c.type.in_(types)))
            if made:
                await conn.execute(insert(variants), [_variant_row(job_id, v, now) for v in made])
            return True

    async def fail(self, job_id: UUID, attempt: int | None, error: JobError) -> bool:
        now = self._now()
        where = (
            self._held(job_id, attempt)
            if attempt is not None
            else (jobs.c.id == job_id, jobs.c.status.in_([PENDING, PROCESSING]))
        )
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(*where)
                .values(
                    status=FAILED,
                    finished_at=now,
                    updated_at=now,
                    lease_until=None,
                    error_code=error.code,
                    error_message=error.message,
                )
            )
            return bool(result.rowcount)

    async def release(self, job_id: UUID, attempt: int) -> bool:
        now = self._now()
        async with self._tx() as conn:
            result = await conn.execute(
                update(jobs)
                .where(*self._held(job_id, attempt))
                .values(status=PENDING, lease_until=None, published_at=None, updated_at=now)
            )
            return bool(result.rowcount)

    async def due_for_publish(self, *, unpublished_for: timedelta, pending_for: timedelta, limit: int) -> list[UUID]:
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
        async with self._tx() as conn:
            ids = list((await conn.execute(query)).scalars())
            if ids:
                # Restart the clock so the next sweep does not publish them again at once.
                await conn.execute(
                    update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == PENDING).values(updated_at=now)
                )
            return ids

    async def expired_leases(self, limit: int, *, all_processing: bool = False) -> list[StaleJob]:
        expired = true() if all_processing else jobs.c.lease_until < self._now()
        query = (
            select(jobs.c.id, jobs.c.attempts)
            .where(jobs.c.status == PROCESSING, expired)
            .order_by(jobs.c.lease_until)
            .limit(limit)
        )
        async with self._tx() as conn:
            return [StaleJob(id=r.id, attempts=r.attempts) for r in await conn.execute(query)]

    # --- helpers --------------------------------------------------------------------

    @staticmethod
    def _held(job_id: UUID, attempt: int) -> tuple[Any, ...]:
        # The attempt number is the fencing token: a worker that lost its lease
        # (and whose job another worker took over) can no longer write.
        return (jobs.c.id == job_id, jobs.c.status == PROCESSING, jobs.c.attempts == attempt)

    @staticmethod
    async def _with_variants(conn: AsyncConnection, rows: list[Any]) -> list[Job]:
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        found: dict[UUID, list[Variant]] = {i: [] for i in ids}
        query = select(variants).where(variants.c.job_id.in_(ids)).order_by(variants.c.created_at, variants.c.type)
        for v in (await conn.execute(query)).mappings():
            found[v["job_id"]].append(
                Variant(
                    type=v["type"],
                    bucket=v["bucket"],
                    key=v["key"],
                    content_type=v["content_type"],
                    format=v["format"],
                    width=v["width"],
                    height=v["height"],
                    bytes=v["bytes"],
                    sha256=v["sha256"],
                )
            )
        return [_job(r, found[r["id"]]) for r in rows]


def _job(row: Any, found: list[Variant]) -> Job:
    error = JobError(row["error_code"], row["error_message"] or "") if row["error_code"] else None
    # The original first, then the rest in the order they were made.
    ordered = sorted(found, key=lambda v: v.type != "original")
    return Job(
        id=row["id"],
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        attempts=row["attempts"],
        filename=row["filename"],
        error=error,
        variants=tuple(ordered),
    )


def _variant_row(job_id: UUID, v: Variant, at: datetime) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "type": v.type,
        "bucket": v.bucket,
        "key": v.key,
        "content_type": v.content_type,
        "format": v.format,
        "width": v.width,
        "height": v.height,
        "bytes": v.bytes,
        "sha256": v.sha256,
        "created_at": at,
    }
