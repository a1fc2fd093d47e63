"""A message that says where the original is gets it fetched while the job is claimed; the job row stays the record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.adapters.queue.memory import MemoryQueue
from imgpipe.adapters.storage.local import LocalStore
from imgpipe.domain.checksums import checksum
from imgpipe.domain.errors import StoreUnavailable
from imgpipe.domain.job import Job, JobStatus
from imgpipe.domain.message import JobMessage, decode
from imgpipe.domain.ports import Delivery
from imgpipe.imaging.types import Rendered, VariantSpec
from imgpipe.services.policy import Policy
from imgpipe.services.processing import Outcome, process_job
from imgpipe.services.uploads import Upload, accept_upload
from support.jobs import photo
from support.rows import pending_job

POLICY = Policy(lease=timedelta(seconds=30), retry_backoff_seconds=0.01)
ORIGINAL_BYTES = b"\xff\xd8 the original \xff\xd9"


class RemoteStore(LocalStore):
    """A folder store that, like S3, hands the worker bytes instead of a path; records its reads."""

    def __init__(self, root: Path, *, failures: int = 0) -> None:
        super().__init__(root)
        self.gets: list[str] = []
        self.get_started = asyncio.Event()
        self.failures = failures  # the first reads fail as an unreachable server would

    def local_path(self, bucket: str, key: str) -> Path | None:
        return None

    async def get(self, bucket: str, key: str) -> bytes:
        self.gets.append(key)
        self.get_started.set()
        if len(self.gets) <= self.failures:
            raise StoreUnavailable("the store is away")
        return await super().get(bucket, key)


class ClaimSeesTheFetch(SqlJobRepository):
    """Claims only once the original's read has begun, and records that it had."""

    def __init__(self, repo: SqlJobRepository, store: RemoteStore, *, wait: bool) -> None:
        super().__init__(repo._db)
        self.store, self.wait = store, wait
        self.fetch_began_first: bool | None = None

    async def claim(self, job_id: UUID, *, lease: timedelta, takeover: bool) -> Job | None:
        if self.wait:
            await asyncio.wait_for(self.store.get_started.wait(), 5)
        self.fetch_began_first = self.store.get_started.is_set()
        return await super().claim(job_id, lease=lease, takeover=takeover)


class RecordingKernel:
    def __init__(self) -> None:
        self.sources: list[bytes | Path] = []

    async def render(self, source: bytes | Path, spec: VariantSpec) -> Rendered:
        self.sources.append(source)
        return Rendered(b"\xff\xd8\xff\xd9", "image/jpeg", 4, 3)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RemoteStore]:
    async with RemoteStore(tmp_path / "objects") as remote:
        yield remote


async def _stored_job(repo: SqlJobRepository, store: RemoteStore) -> Job:
    job = pending_job(POLICY.bucket_original, size=len(ORIGINAL_BYTES))
    await store.put(*_where(job), ORIGINAL_BYTES, "image/jpeg")
    await repo.add(job)
    return job


def _where(job: Job) -> tuple[str, str]:
    assert job.original is not None
    return job.original.bucket, job.original.key


async def _process(job: Job, jobs: SqlJobRepository, store: RemoteStore, hint: tuple[str, str] | None) -> Outcome:
    kernel = RecordingKernel()
    outcome = await process_job(
        job.id, redelivered=False, jobs=jobs, store=store, kernel=kernel, policy=POLICY, original=hint
    )
    if outcome is Outcome.DONE:
        assert kernel.sources == [ORIGINAL_BYTES]
    return outcome


async def test_the_original_is_fetched_while_the_job_is_claimed(repo: SqlJobRepository, store: RemoteStore) -> None:
    job = await _stored_job(repo, store)
    jobs = ClaimSeesTheFetch(repo, store, wait=True)  # without the early fetch, this claim times out
    assert await _process(job, jobs, store, _where(job)) is Outcome.DONE
    assert jobs.fetch_began_first is True
    assert store.gets == [_where(job)[1]]  # fetched once
    done = await repo.get(job.id)
    assert done is not None and done.status is JobStatus.DONE


async def test_without_a_hint_the_original_is_fetched_after_the_claim(
    repo: SqlJobRepository, store: RemoteStore
) -> None:
    job = await _stored_job(repo, store)
    jobs = ClaimSeesTheFetch(repo, store, wait=False)
    assert await _process(job, jobs, store, None) is Outcome.DONE
    assert jobs.fetch_began_first is False
    assert store.gets == [_where(job)[1]]


async def test_a_hint_naming_another_object_is_not_used(repo: SqlJobRepository, store: RemoteStore) -> None:
    job = await _stored_job(repo, store)
    other = await _stored_job(repo, store)  # a real object, but not this job's original
    assert await _process(job, repo, store, _where(other)) is Outcome.DONE  # the kernel got this job's bytes
    assert store.gets == [_where(other)[1], _where(job)[1]]


async def test_an_early_fetch_that_fails_is_made_again_with_the_retries(repo: SqlJobRepository, tmp_path: Path) -> None:
    async with RemoteStore(tmp_path / "flaky", failures=1) as flaky:
        job = await _stored_job(repo, flaky)
        jobs = ClaimSeesTheFetch(repo, flaky, wait=True)  # the read that fails is the early one
        assert await _process(job, jobs, flaky, _where(job)) is Outcome.DONE
        assert jobs.fetch_began_first is True
        assert flaky.gets == [_where(job)[1]] * 2


async def test_a_job_not_claimed_leaves_no_fetch_running(repo: SqlJobRepository, store: RemoteStore) -> None:
    job = await _stored_job(repo, store)
    assert await _process(job, repo, store, _where(job)) is Outcome.DONE
    before = asyncio.all_tasks()
    assert await _process(job, repo, store, _where(job)) is Outcome.SKIPPED  # a duplicate delivery: DONE already
    await asyncio.sleep(0)
    assert not [t for t in asyncio.all_tasks() - before if not t.done()]


@pytest.mark.parametrize("key", ["../escape.jpg", "a/../../b.jpg", "", "x\\y.jpg"])
async def test_a_hint_no_store_would_make_costs_nothing_but_the_early_fetch(
    repo: SqlJobRepository, tmp_path: Path, key: str
) -> None:
    async with LocalStore(tmp_path / "folder") as folder:  # the folder store refuses such keys outright
        job = pending_job(POLICY.bucket_original, size=len(ORIGINAL_BYTES))
        await folder.put(*_where(job), ORIGINAL_BYTES, "image/jpeg")
        await repo.add(job)
        kernel = RecordingKernel()
        outcome = await process_job(
            job.id,
            redelivered=False,
            jobs=repo,
            store=folder,
            kernel=kernel,
            policy=POLICY,
            original=(POLICY.bucket_original, key),
        )
        assert outcome is Outcome.DONE
        assert kernel.sources == [folder.local_path(*_where(job))]  # the kernel opened the recorded original


async def test_an_accepted_upload_publishes_where_its_original_was_stored(
    repo: SqlJobRepository, tmp_path: Path
) -> None:
    data = photo(1, (64, 48))
    async with LocalStore(tmp_path / "accepted") as folder, MemoryQueue(delivery_limit=3) as queue:
        staged = folder.stage(POLICY.bucket_original)
        staged.write(data)
        upload = Upload(staged=staged, size=len(data), checksum=checksum(data), filename="p.jpg")
        job = await accept_upload(upload, jobs=repo, store=folder, queue=queue, policy=POLICY)
        got: list[bytes] = []

        async def handle(delivery: Delivery) -> None:
            got.append(delivery.body)
            await delivery.ack()

        consumer = await queue.consume(handle, prefetch=1)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        await consumer.cancel()
    assert job.original is not None
    assert decode(got[0]) == JobMessage(job.id, (job.original.bucket, job.original.key))
