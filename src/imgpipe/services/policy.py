"""``Policy``: the numbers the use cases obey (limits, buckets, leases, retries), built once from Settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from imgpipe.config import Settings
from imgpipe.domain.errors import StoreUnavailable
from imgpipe.imaging.types import Limits, VariantSpec

__all__ = ["Policy", "with_retries"]

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Policy:
    limits: Limits = field(default_factory=Limits)
    variants: tuple[VariantSpec, ...] = (VariantSpec(),)
    bucket_original: str = "images-original"
    bucket_processed: str = "images-processed"
    lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 3
    storage_retries: int = 4
    retry_backoff_seconds: float = 0.5
    republish_after: timedelta = timedelta(seconds=10)
    requeue_pending_after: timedelta = timedelta(minutes=15)
    presign_expires: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, s: Settings) -> Policy:
        return cls(
            limits=Limits(max_pixels=s.max_pixels),
            variants=(VariantSpec(width=s.thumbnail_size, height=s.thumbnail_size, jpeg_quality=s.jpeg_quality),),
            bucket_original=s.bucket_original,
            bucket_processed=s.bucket_processed,
            lease=timedelta(seconds=s.lease_seconds),
            max_attempts=s.max_attempts,
            storage_retries=s.storage_retries,
            retry_backoff_seconds=s.retry_backoff_seconds,
            republish_after=timedelta(seconds=s.republish_after_seconds),
            requeue_pending_after=timedelta(seconds=s.requeue_pending_after_seconds),
            presign_expires=timedelta(seconds=s.presign_expires_seconds),
        )

    def backoff(self, attempt: int) -> float:
        """Exponential backoff for the ``attempt``-th retry (1-based), capped at 30 s."""
        return float(min(30.0, self.retry_backoff_seconds * 2 ** max(0, attempt - 1)))


async def with_retries(op: Callable[[], Awaitable[T]], policy: Policy, what: str) -> T:
    """Run a storage call, retrying ``StoreUnavailable`` with backoff a bounded number of times."""
    for attempt in range(1, policy.storage_retries + 2):
        try:
            return await op()
        except StoreUnavailable as exc:
            if attempt > policy.storage_retries:
                raise
            delay = policy.backoff(attempt)
            log.warning(
                "storage call failed, retrying",
                extra={"op": what, "attempt": attempt, "delay": delay, "error": exc.message},
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
