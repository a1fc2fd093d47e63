"""The composition root: the only module that imports concrete adapters and picks them by configuration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from imgpipe.adapters.db.engine import open_database
from imgpipe.adapters.db.migrate import upgrade
from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.adapters.queue.amqp import AmqpQueue
from imgpipe.adapters.queue.memory import MemoryQueue
from imgpipe.adapters.storage.local import LocalStore
from imgpipe.adapters.storage.s3 import S3Store
from imgpipe.config import (
    AmqpSettings,
    BrokerSettings,
    LocalStorageSettings,
    MemoryBrokerSettings,
    S3Settings,
    Settings,
    StorageSettings,
)
from imgpipe.domain.errors import StoreUnavailable
from imgpipe.domain.ports import JobQueue, JobRepository, Kernel, ObjectStore
from imgpipe.services.policy import Policy
from imgpipe.worker.kernel_pool import ProcessKernel
from imgpipe.worker.runner import Worker

__all__ = ["Services", "build_kernel", "build_services", "make_queue", "make_store", "make_worker"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    policy: Policy
    jobs: JobRepository
    store: ObjectStore
    queue: JobQueue


def make_store(cfg: StorageSettings) -> S3Store | LocalStore:
    match cfg:
        case S3Settings():
            return S3Store(cfg)
        case LocalStorageSettings():
            return LocalStore(cfg.root)


def make_queue(cfg: BrokerSettings) -> AmqpQueue | MemoryQueue:
    match cfg:
        case AmqpSettings():
            return AmqpQueue(cfg)
        case MemoryBrokerSettings():
            return MemoryQueue(delivery_limit=cfg.delivery_limit)


@asynccontextmanager
async def build_services(settings: Settings, *, migrate: bool = False, listen: bool = False) -> AsyncIterator[Services]:
    """Connect every backend the settings name; close them all on exit.

    Start-up does not wait for a dependency that is away: the process starts,
    ``/ready`` says what is missing, and each adapter catches up when it returns.
    ``listen``: a process that answers status long-polls hears the status changes
    other processes write, where the database announces them (PostgreSQL).
    """
    if migrate:
        await upgrade(settings.database.url)
    database = open_database(settings.database.url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(database.dispose)
        policy = Policy.from_settings(settings)
        store: ObjectStore = await stack.enter_async_context(make_store(settings.storage))
        buckets = asyncio.create_task(_ensure_buckets(store, policy), name="ensure-buckets")
        stack.push_async_callback(_cancel, buckets)
        queue: JobQueue = await stack.enter_async_context(make_queue(settings.broker))
        # With the in-process queue no other process works on these jobs: every status change is written here.
        local = isinstance(settings.broker, MemoryBrokerSettings)
        jobs = SqlJobRepository(database, all_writes_here=local)
        stack.push_async_callback(jobs.close)
        if listen and not local:
            await stack.enter_async_context(jobs.listen())
        yield Services(settings=settings, policy=policy, jobs=jobs, store=store, queue=queue)


async def _ensure_buckets(store: ObjectStore, policy: Policy) -> None:
    delay = 0.5
    while True:
        try:
            for bucket in (policy.bucket_original, policy.bucket_processed):
                await store.ensure_bucket(bucket)
            return
        except StoreUnavailable as exc:
            log.warning("storage unavailable at start, retrying", extra={"error": exc.message})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_kernel(settings: Settings) -> ProcessKernel:
    return ProcessKernel(
        processes=settings.worker_concurrency,
        limits=Policy.from_settings(settings).limits,
        timeout_seconds=settings.job_timeout_seconds,
        max_rss_bytes=settings.kernel_max_rss_mb * 1024 * 1024,
        # Never so much that a kernel process keeping it would soon be replaced for its size.
        keep_heap_bytes=min(settings.kernel_keep_heap_mb, settings.kernel_max_rss_mb // 2) * 1024 * 1024,
    )


def make_worker(services: Services, kernel: Kernel) -> Worker:
    s = services.settings
    return Worker(
        jobs=services.jobs,
        store=services.store,
        queue=services.queue,
        kernel=kernel,
        policy=services.policy,
        prefetch=s.effective_prefetch,
        reconcile_interval=s.reconcile_interval_seconds,
        shutdown_grace=s.shutdown_grace_seconds,
    )


async def schema_status(settings: Settings) -> str:
    """ "ok" when the database is at the newest migration, else what is wrong."""
    from imgpipe.adapters.db.migrate import current_revision, head_revision

    try:
        current, head = await current_revision(settings.database.url), head_revision()
    except Exception as exc:  # doctor reports, it does not crash
        return f"cannot read the schema revision: {type(exc).__name__}: {exc}"
    return "ok" if current == head else f"at {current or 'nothing'}, newest is {head}: run `imgpipe migrate`"
