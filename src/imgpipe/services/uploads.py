"""Accept an upload: probe it, store the original, record the job, queue its message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from imgpipe.domain.errors import BrokerUnavailable, EmptyUpload, ImgpipeError
from imgpipe.domain.filenames import sanitize_filename
from imgpipe.domain.job import ORIGINAL, Job, JobStatus, Variant
from imgpipe.domain.ports import JobQueue, JobRepository, ObjectStore, Staged
from imgpipe.imaging.probe import probe
from imgpipe.imaging.types import ImageFormat
from imgpipe.services.policy import Policy, with_retries

__all__ = ["Upload", "accept_upload", "original_key"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Upload:
    """An upload already received in full (staged in the store, counted and hashed by the API)."""

    staged: Staged
    size: int
    checksum: str
    filename: str | None


def original_key(job_id: UUID, fmt: ImageFormat) -> str:
    # Server-made keys only: the client's filename never reaches storage.
    return f"{job_id}.{fmt.extension}"


async def accept_upload(
    upload: Upload, *, jobs: JobRepository, store: ObjectStore, queue: JobQueue, policy: Policy
) -> Job:
    """Raise the image's PermanentError (nothing stored) or a RetryableError (nothing left behind).

    Commits ``upload.staged`` under the job's key; the caller discards it whatever happens
    (a no-op after the commit).
    """
    if upload.size == 0:
        raise EmptyUpload()
    # In a thread: most headers take microseconds, but a GIF's frames are walked one by one.
    info = await asyncio.to_thread(probe, upload.staged.reader(), policy.limits)

    job_id = uuid4()
    now = datetime.now(UTC)
    original = Variant(
        type=ORIGINAL,
        bucket=policy.bucket_original,
        key=original_key(job_id, info.format),
        content_type=info.content_type,
        format=info.format.value,
        width=info.width,
        height=info.height,
        bytes=upload.size,
        checksum=upload.checksum,
    )
    await with_retries(
        lambda: upload.staged.commit(original.key, original.content_type),
        policy,
        "store original",
    )
    job = Job(
        id=job_id,
        status=JobStatus.PENDING,
        created_at=now,
        updated_at=now,
        filename=sanitize_filename(upload.filename),
        variants=(original,),
    )
    try:
        await jobs.add(job)
    except BaseException:
        # No row, so no object either: a failed upload leaves nothing behind.
        with contextlib.suppress(ImgpipeError):
            await store.delete(original.bucket, original.key)
        raise
    log.info("job accepted", extra={"job_id": str(job_id), "format": info.format.value, "bytes": upload.size})

    try:
        await queue.publish(job_id, (original.bucket, original.key))
    except BrokerUnavailable as exc:
        # The row is the outbox: the reconciler publishes it once the broker is back.
        log.warning("publish failed, job kept for republishing", extra={"job_id": str(job_id), "error": exc.message})
        return job
    await jobs.mark_published(job_id)
    return job
