"""Jobs and their variants: states, legal moves and the records the API reports. No I/O lives here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from imgpipe.domain.errors import ImgpipeError

__all__ = [
    "ORIGINAL",
    "Job",
    "JobError",
    "JobStatus",
    "Variant",
    "can_move",
    "sources",
]

ORIGINAL = "original"  # the variant type of the uploaded bytes, stored as they came


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    DONE = "DONE"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED}),
    # PROCESSING -> PENDING hands a job back (graceful stop, lease expired);
    # PROCESSING -> PROCESSING is a takeover of a dead worker's lease.
    JobStatus.PROCESSING: frozenset({JobStatus.PROCESSING, JobStatus.DONE, JobStatus.FAILED, JobStatus.PENDING}),
    JobStatus.DONE: frozenset(),
    JobStatus.FAILED: frozenset(),
}


def can_move(current: JobStatus, target: JobStatus) -> bool:
    """Whether a job may go from ``current`` to ``target``; final states never move."""
    return target in _ALLOWED[current]


def sources(target: JobStatus) -> frozenset[JobStatus]:
    """Every status a job may move to ``target`` from (the conditional updates are built on it)."""
    return frozenset(s for s in JobStatus if can_move(s, target))


@dataclass(frozen=True, slots=True)
class JobError:
    code: str
    message: str

    @classmethod
    def of(cls, exc: ImgpipeError) -> JobError:
        return cls(exc.code, exc.message)


@dataclass(frozen=True, slots=True)
class Variant:
    """One stored rendition of a job's image: the original or something made from it."""

    type: str
    bucket: str
    key: str
    content_type: str
    width: int
    height: int
    bytes: int
    checksum: str | None = None  # "algorithm:hex", see domain.checksums
    format: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: UUID
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    filename: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: JobError | None = None
    variants: tuple[Variant, ...] = field(default=())

    @property
    def original(self) -> Variant | None:
        return self.variant(ORIGINAL)

    def variant(self, type_: str) -> Variant | None:
        return next((v for v in self.variants if v.type == type_), None)
