"""The ports: small Protocols that adapters implement, each with its error contract. No I/O lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Protocol
from uuid import UUID

from imgpipe.domain.job import Job, JobError, Variant
from imgpipe.imaging.types import Rendered, VariantSpec

__all__ = [
    "Consumer",
    "Delivery",
    "JobQueue",
    "JobRepository",
    "Kernel",
    "ObjectStore",
    "ObjectStream",
    "Page",
    "QueueStats",
    "StaleJob",
    "Staged",
]


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    next_cursor: tuple[datetime, UUID] | None


@dataclass(frozen=True, slots=True)
class StaleJob:
    """A PROCESSING job whose lease ran out: its worker died or lost its connection."""

    id: UUID
    attempts: int


class JobRepository(Protocol):
    """Jobs and their variants. Every state change is a conditional update, so
    duplicate deliveries and late messages can never move a job backwards.
    Raise ``DatabaseUnavailable`` when the database does not answer."""

    async def add(self, job: Job) -> None:
        """Insert a PENDING job with its original variant, in one transaction."""

    async def get(self, job_id: UUID) -> Job | None: ...

    def version(self, job_id: UUID) -> int:
        """A counter of the status changes of ``job_id`` this repository has written or heard of (no
        I/O). Take it before reading the job, then ``changed_since`` cannot miss a change made in between."""

    async def changed_since(self, job_id: UUID, version: int, within: float) -> bool:
        """Wait up to ``within`` seconds for a status change of ``job_id`` beyond ``version``, written
        here or heard of; True at once if there was one, and True when a change may have gone unheard."""

    @property
    def changes_pushed(self) -> bool:
        """True while ``changed_since`` sees every status change, whichever process writes it: all
        writers are in this process, or the database announces changes. Otherwise the caller polls."""

    async def list_recent(self, limit: int, before: tuple[datetime, UUID] | None = None) -> Page:
        """Newest first, keyset-paginated on (created_at, id): stable under concurrent inserts."""

    async def mark_published(self, job_id: UUID) -> None:
        """Record that the job's message was confirmed by the broker: possibly a moment
        later, together with others (``flush`` writes them now). Never raises: a record
        that is lost only makes the reconciler publish the job once more."""

    async def flush(self) -> None:
        """Write what ``mark_published`` has buffered."""

    async def close(self) -> None:
        """Flush, and stop any background work."""

    async def claim(self, job_id: UUID, *, lease: timedelta, takeover: bool) -> Job | None:
        """PENDING -> PROCESSING and attempts + 1, or a PROCESSING job whose lease has
        expired (or any PROCESSING job if ``takeover``: its message was redelivered, so
        its holder is gone). Return the claimed job, or None when the job is final or
        another worker holds a live lease. Raise ``JobNotFound`` for an unknown id."""

    async def extend_lease(self, job_id: UUID, attempt: int, lease: timedelta) -> bool: ...

    async def complete(self, job_id: UUID, attempt: int, variants: list[Variant]) -> bool:
        """PROCESSING -> DONE with the new variants, only if ``attempt`` still holds the job."""

    async def fail(self, job_id: UUID, attempt: int, error: JobError) -> bool:
        """PROCESSING -> FAILED, only if ``attempt`` still holds the job."""

    async def release(self, job_id: UUID, attempt: int) -> bool:
        """PROCESSING -> PENDING (hand back), marked unpublished so it is queued again."""

    async def due_for_publish(
        self, *, unpublished_for: timedelta, pending_for: timedelta, limit: int | None
    ) -> list[UUID]:
        """PENDING jobs never confirmed to the broker for ``unpublished_for``, or
        waiting at all for longer than ``pending_for`` (their message may be lost)."""

    async def originals(self, job_ids: list[UUID]) -> dict[UUID, tuple[str, str]]:
        """Where each job's original is stored, (bucket, key), for those of ``job_ids`` that have one."""

    async def expired_leases(self, limit: int | None, *, all_processing: bool = False) -> list[StaleJob]:
        """PROCESSING jobs whose lease ran out (or all of them, when the caller knows
        no worker can be alive: a single-process restart)."""

    async def ping(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ObjectStream:
    size: int
    chunks: AsyncIterator[bytes]


class Staged(Protocol):
    """An object being written as its bytes arrive, invisible until ``commit`` names it.

    ``write`` runs on the event loop for each received chunk and must stay cheap (a
    buffered or page-cache write); it copies what it keeps, as ``data`` may be a view into
    the received chunk. Exactly one of ``commit`` or ``discard`` ends it.
    """

    def write(self, data: bytes | memoryview) -> None: ...

    def reader(self) -> IO[bytes]:
        """What was written, readable from the start (the caller seeks and reads, never writes)."""

    async def commit(self, key: str, content_type: str) -> None:
        """Store it under ``key`` atomically and durably; may be retried after StoreUnavailable."""

    async def discard(self) -> None:
        """Drop it; idempotent, and a no-op after a commit."""


class ObjectStore(Protocol):
    """Buckets of immutable objects under server-chosen keys.
    Raise ``ObjectNotFound`` for a missing key and ``StoreUnavailable`` when the
    backend does not answer, whatever the backend."""

    async def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if missing; "already exists" is success."""

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        """Store atomically: readers see the old object or the new one, never a part."""

    def stage(self, bucket: str) -> Staged:
        """Start an object in ``bucket`` whose key is decided once all of it has arrived."""

    async def get(self, bucket: str, key: str) -> bytes: ...

    async def open(self, bucket: str, key: str) -> ObjectStream:
        """Start a streamed read; ``ObjectNotFound`` is raised here, before any chunk."""

    async def delete(self, bucket: str, key: str) -> None:
        """Idempotent: deleting a missing key is not an error."""

    async def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted."""

    def presigned_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        """A URL a browser can open directly, or None if the backend has none."""

    def local_path(self, bucket: str, key: str) -> Path | None:
        """The object as a file on this machine, for readers (the kernel) to open directly; None when the
        backend has no such file. Whether it exists is for the reader to find out."""

    async def ping(self) -> None: ...


class Delivery(Protocol):
    """One message handed to a consumer; exactly one of the three settles it."""

    @property
    def body(self) -> bytes: ...

    @property
    def redelivered(self) -> bool:
        """True when an earlier delivery of this message was not acked (its consumer died or gave it back)."""

    async def ack(self) -> None: ...

    async def retry(self) -> None:
        """Give it back to the queue for another delivery (counts towards the delivery limit)."""

    async def dead_letter(self) -> None: ...


class Consumer(Protocol):
    async def cancel(self) -> None:
        """Stop receiving new deliveries; settled or not, those handed out stay with the handler."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    ready: int  # waiting for a consumer
    dead: int  # dead-lettered: malformed, unknown job, or past the delivery limit


class JobQueue(Protocol):
    """Durable job messages with at-least-once delivery.
    Raise ``BrokerUnavailable`` when the broker does not confirm in time."""

    async def publish(self, job_id: UUID, original: tuple[str, str] | None = None) -> None:
        """Return only once the broker has confirmed the message. ``original``: (bucket, key) of the job's
        original, carried as a hint so that a worker can fetch it while claiming the job."""

    async def consume(self, handler: Callable[[Delivery], Awaitable[None]], prefetch: int) -> Consumer:
        """Call ``handler`` for each delivery, at most ``prefetch`` unsettled at once."""

    async def stats(self) -> QueueStats: ...

    async def ping(self) -> None: ...


class Kernel(Protocol):
    """Makes variants off the event loop. Raise the image's ``PermanentError``
    (corrupt, unsupported, too large), ``ProcessingTimeout`` after the hard limit,
    ``ProcessingCrashed`` when the kernel process died under the job."""

    async def render(self, source: bytes | Path, spec: VariantSpec) -> Rendered:
        """From the original's bytes, or from a file of them (the folder store's): then the kernel reads
        it itself, and no copy of the original passes through the worker. ``ObjectNotFound`` if it is gone."""
