"""The JobRepository contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.domain.errors import JobNotFound
from imgpipe.domain.job import ORIGINAL, Job, JobError, JobStatus, Variant

LEASE = timedelta(seconds=30)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock(repo: SqlJobRepository) -> Clock:
    c = Clock()
    repo._now = c  # the repository reads time only through its clock
    return c


def original(job_id: UUID) -> Variant:
    return Variant(ORIGINAL, "orig", f"{job_id}.jpg", "image/jpeg", 640, 480, 12345, "ab" * 32, "jpeg")


def thumbnail(job_id: UUID) -> Variant:
    return Variant("thumbnail", "proc", f"{job_id}/thumbnail.jpg", "image/jpeg", 256, 192, 999, "cd" * 32, "jpg")


async def new_job(repo: SqlJobRepository, clock: Clock, *, filename: str | None = "cat.jpg") -> UUID:
    job_id = uuid4()
    now = clock()
    await repo.add(Job(job_id, JobStatus.PENDING, now, now, filename=filename, variants=(original(job_id),)))
    return job_id


async def test_an_added_job_reads_back_pending_with_its_original(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    job = await repo.get(job_id)
    assert job is not None
    assert job.status is JobStatus.PENDING
    assert job.attempts == 0
    assert job.filename == "cat.jpg"
    assert job.created_at == clock.now and job.created_at.tzinfo is not None
    assert job.variants == (original(job_id),)


async def test_getting_an_unknown_job_gives_none(repo: SqlJobRepository) -> None:
    assert await repo.get(uuid4()) is None


async def test_claiming_a_pending_job_moves_it_to_processing_once(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    claimed = await repo.claim(job_id, lease=LEASE, takeover=False)
    assert claimed is not None and claimed.status is JobStatus.PROCESSING and claimed.attempts == 1
    assert claimed.original == original(job_id)
    # A duplicate delivery finds it held by a live lease.
    assert await repo.claim(job_id, lease=LEASE, takeover=False) is None


async def test_claiming_an_unknown_job_raises_job_not_found(repo: SqlJobRepository, clock: Clock) -> None:
    with pytest.raises(JobNotFound):
        await repo.claim(uuid4(), lease=LEASE, takeover=False)


async def test_a_redelivery_takes_over_and_fences_out_the_old_attempt(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    first = await repo.claim(job_id, lease=LEASE, takeover=False)
    second = await repo.claim(job_id, lease=LEASE, takeover=True)
    assert first is not None and second is not None and second.attempts == 2
    assert not await repo.complete(job_id, first.attempts, [thumbnail(job_id)])
    assert not await repo.extend_lease(job_id, first.attempts, LEASE)
    assert await repo.complete(job_id, second.attempts, [thumbnail(job_id)])


async def test_an_expired_lease_can_be_claimed_without_takeover(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    await repo.claim(job_id, lease=LEASE, takeover=False)
    clock.advance(seconds=31)
    again = await repo.claim(job_id, lease=LEASE, takeover=False)
    assert again is not None and again.attempts == 2


async def test_completing_records_the_variants_and_nothing_moves_a_done_job(
    repo: SqlJobRepository, clock: Clock
) -> None:
    job_id = await new_job(repo, clock)
    claimed = await repo.claim(job_id, lease=LEASE, takeover=False)
    assert claimed is not None
    clock.advance(seconds=2)
    assert await repo.complete(job_id, claimed.attempts, [thumbnail(job_id)])
    # Late and duplicate messages after DONE: no claim, no failure, no hand-back.
    assert await repo.claim(job_id, lease=LEASE, takeover=True) is None
    assert not await repo.fail(job_id, claimed.attempts, JobError("x", "y"))
    assert not await repo.release(job_id, claimed.attempts)
    done = await repo.get(job_id)
    assert done is not None and done.status is JobStatus.DONE
    assert [v.type for v in done.variants] == [ORIGINAL, "thumbnail"]
    assert done.variant("thumbnail") == thumbnail(job_id)
    assert done.finished_at == clock.now


async def test_completing_twice_keeps_one_row_per_variant(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    first = await repo.claim(job_id, lease=LEASE, takeover=False)
    second = await repo.claim(job_id, lease=LEASE, takeover=True)
    assert first and second
    assert await repo.complete(job_id, second.attempts, [thumbnail(job_id)])
    done = await repo.get(job_id)
    assert done is not None and len(done.variants) == 2


async def test_failing_records_the_error_only_for_the_holding_attempt(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    claimed = await repo.claim(job_id, lease=LEASE, takeover=False)
    assert claimed is not None
    assert not await repo.fail(job_id, claimed.attempts + 1, JobError("corrupt_image", "bad"))
    assert await repo.fail(job_id, claimed.attempts, JobError("corrupt_image", "The data is corrupt."))
    job = await repo.get(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error == JobError("corrupt_image", "The data is corrupt.")


async def test_a_released_job_is_pending_again_and_due_for_publishing(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    await repo.mark_published(job_id)
    await repo.flush()
    claimed = await repo.claim(job_id, lease=LEASE, takeover=False)
    assert claimed is not None
    assert await repo.release(job_id, claimed.attempts)
    job = await repo.get(job_id)
    assert job is not None and job.status is JobStatus.PENDING and job.attempts == 1
    clock.advance(seconds=11)
    assert await repo.due_for_publish(
        unpublished_for=timedelta(seconds=10), pending_for=timedelta(hours=1), limit=10
    ) == [job_id]


async def test_due_for_publish_finds_unconfirmed_and_long_waiting_jobs_once(
    repo: SqlJobRepository, clock: Clock
) -> None:
    unconfirmed = await new_job(repo, clock)
    confirmed = await new_job(repo, clock)
    await repo.mark_published(confirmed)
    await repo.flush()
    kw = {"unpublished_for": timedelta(seconds=10), "pending_for": timedelta(minutes=15), "limit": 10}
    assert await repo.due_for_publish(**kw) == []  # type: ignore[arg-type]
    clock.advance(seconds=11)
    assert await repo.due_for_publish(**kw) == [unconfirmed]  # type: ignore[arg-type]
    # Picking them restarts their clock: the next sweep does not publish them again.
    assert await repo.due_for_publish(**kw) == []  # type: ignore[arg-type]
    clock.advance(minutes=16)
    assert set(await repo.due_for_publish(**kw)) == {unconfirmed, confirmed}  # type: ignore[arg-type]


async def test_originals_says_where_each_jobs_original_is_stored(repo: SqlJobRepository, clock: Clock) -> None:
    first, second = await new_job(repo, clock), await new_job(repo, clock)
    claimed = await repo.claim(second, lease=LEASE, takeover=False)
    assert claimed is not None
    assert await repo.complete(second, claimed.attempts, [thumbnail(second)])  # a thumbnail is not an original
    unknown = uuid4()
    assert await repo.originals([first, second, unknown]) == {
        first: ("orig", f"{first}.jpg"),
        second: ("orig", f"{second}.jpg"),
    }
    assert await repo.originals([]) == {}


async def test_expired_leases_lists_only_processing_jobs_past_their_lease(repo: SqlJobRepository, clock: Clock) -> None:
    stuck, fresh, _pending = [await new_job(repo, clock) for _ in range(3)]
    await repo.claim(stuck, lease=timedelta(seconds=5), takeover=False)
    await repo.claim(fresh, lease=timedelta(seconds=60), takeover=False)
    clock.advance(seconds=6)
    assert [s.id for s in await repo.expired_leases(10)] == [stuck]
    assert {s.id for s in await repo.expired_leases(10, all_processing=True)} == {stuck, fresh}


async def test_listing_pages_newest_first_and_is_stable_under_concurrent_inserts(
    repo: SqlJobRepository, clock: Clock
) -> None:
    older = []
    for _ in range(25):
        clock.advance(seconds=1)
        older.append(await new_job(repo, clock))
    seen: list[UUID] = []
    page = await repo.list_recent(10)
    while True:
        seen.extend(job.id for job in page.jobs)
        # New uploads arrive between page requests; they land before the cursor.
        clock.advance(seconds=1)
        await new_job(repo, clock)
        if page.next_cursor is None:
            break
        page = await repo.list_recent(10, page.next_cursor)
    assert seen[:25] == list(reversed(older))[: len(seen[:25])]
    assert seen == list(reversed(older))


async def test_same_timestamp_jobs_are_ordered_by_id_and_all_listed(repo: SqlJobRepository, clock: Clock) -> None:
    ids = [await new_job(repo, clock) for _ in range(7)]  # all at the same instant
    seen: list[UUID] = []
    cursor = None
    while True:
        page = await repo.list_recent(3, cursor)
        seen.extend(j.id for j in page.jobs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True)


async def test_confirmed_publishes_are_recorded_together_a_moment_later(repo: SqlJobRepository, clock: Clock) -> None:
    ids = [await new_job(repo, clock) for _ in range(3)]
    for job_id in ids:
        await repo.mark_published(job_id)
    await asyncio.sleep(0.3)  # no flush asked for: the buffer writes itself
    clock.advance(seconds=11)
    kw = {"unpublished_for": timedelta(seconds=10), "pending_for": timedelta(hours=1), "limit": 10}
    assert await repo.due_for_publish(**kw) == []  # type: ignore[arg-type]


async def test_status_changes_are_counted_and_wake_waiters_at_once(repo: SqlJobRepository, clock: Clock) -> None:
    job_id = await new_job(repo, clock)
    seen = repo.version(job_id)
    assert not await repo.changed_since(job_id, seen, 0.05)  # nothing happened: the timeout

    async def waiter() -> tuple[bool, float]:
        started = asyncio.get_running_loop().time()
        woken = await repo.changed_since(job_id, seen, 10)
        return woken, asyncio.get_running_loop().time() - started

    # Two waiters, one of which gives up first: the other is still woken by the change.
    quick = asyncio.create_task(repo.changed_since(job_id, seen, 0.05))
    slow = [asyncio.create_task(waiter()) for _ in range(2)]
    assert not await quick
    claimed = await repo.claim(job_id, lease=timedelta(minutes=1), takeover=False)
    assert claimed is not None
    for woken, waited in await asyncio.gather(*slow):
        assert woken and waited < 5
    assert repo.version(job_id) == seen + 1
    assert await repo.changed_since(job_id, seen, 10)  # already past: at once

    assert await repo.complete(job_id, claimed.attempts, [thumbnail(job_id)])
    assert repo.version(job_id) == seen + 2
    # A write that changes nothing (a fenced-out attempt) is not a change.
    assert not await repo.fail(job_id, claimed.attempts, JobError("x", "y"))
    assert repo.version(job_id) == seen + 2
