"""Job rows for tests that drive the repository and the worker directly."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from imgpipe.domain.job import ORIGINAL, Job, JobStatus, Variant

__all__ = ["pending_job"]


def pending_job(bucket: str, *, size: int = 4) -> Job:
    """A new PENDING job whose original, a 4 x 3 JPEG of ``size`` bytes, is ``<id>.jpg`` in ``bucket``."""
    now, job_id = datetime.now(UTC), uuid4()
    original = Variant(
        type=ORIGINAL,
        bucket=bucket,
        key=f"{job_id}.jpg",
        content_type="image/jpeg",
        format="jpeg",
        width=4,
        height=3,
        bytes=size,
    )
    return Job(id=job_id, status=JobStatus.PENDING, created_at=now, updated_at=now, variants=(original,))
