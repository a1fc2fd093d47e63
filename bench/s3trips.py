"""The S3 stand-in's own share of an idle job's path: the three storage calls one job waits on, timed alone.

A server-stack job waits on three S3 requests in turn: the API stores the original, the
worker fetches it, the worker stores the thumbnail. Each is timed here on its own, through
imgpipe's own S3 client (``S3Store``) against the same server, as those processes make it,
so the idle latency can be read with and without the stand-in's part.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from bench.procs import S3Server
from bench.stats import summary
from imgpipe.adapters.storage.s3 import S3Store
from imgpipe.config import S3Settings, Settings

__all__ = ["CALLS", "time_s3_trips"]

CALLS = ("put original", "get original", "put thumbnail")
_CHUNK = 256 * 1024  # as the API's upload receive hands the staged object its chunks


def _settings(s3: S3Server) -> S3Settings:
    env = s3.env("unused")
    storage = Settings(
        storage_url=env["IMGPIPE_STORAGE_URL"],
        s3_endpoint_url=env["IMGPIPE_S3_ENDPOINT_URL"],
        s3_access_key=env["IMGPIPE_S3_ACCESS_KEY"],
        s3_secret_key=env["IMGPIPE_S3_SECRET_KEY"],
        s3_region=env["IMGPIPE_S3_REGION"],
    ).storage
    assert isinstance(storage, S3Settings)
    return storage


async def _trips(s3: S3Server, pairs: list[tuple[bytes, bytes]], count: int, bucket: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {call: [] for call in CALLS}
    async with S3Store(_settings(s3)) as store:
        await store.ensure_bucket(bucket)
        keys = []
        for n in range(count + 1):  # the first round warms the connections up and is not kept
            original, thumbnail = pairs[n % len(pairs)]
            key = f"{n}.jpg"
            t0 = time.perf_counter()
            staged = store.stage(bucket)  # as the API stores an upload: staged, then committed
            for offset in range(0, len(original), _CHUNK):
                staged.write(original[offset : offset + _CHUNK])
            await staged.commit(key, "image/jpeg")
            t1 = time.perf_counter()
            await store.get(bucket, key)
            t2 = time.perf_counter()
            await store.put(bucket, f"{n}/thumbnail.jpg", thumbnail, "image/jpeg")
            t3 = time.perf_counter()
            keys += [key, f"{n}/thumbnail.jpg"]
            if n:
                for call, seconds in zip(CALLS, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                    times[call].append(seconds * 1000)
        for key in keys:  # the stand-in keeps objects in memory
            await store.delete(bucket, key)
    return times


def time_s3_trips(s3: S3Server, pairs: list[tuple[bytes, bytes]], count: int) -> dict[str, Any]:
    """``count`` rounds over ``pairs`` (an original, the thumbnail made of it), in turn.

    Per call, ms (summaries); ``sum_p50``, the three medians added, what one job waits on;
    and the bucket, emptied again.
    """
    bucket = f"trips-{uuid.uuid4().hex[:8]}"
    times = asyncio.run(_trips(s3, pairs, count, bucket))
    calls = {call: summary(values) for call, values in times.items()}
    return {"calls_ms": calls, "sum_p50": sum(c["p50"] for c in calls.values()), "bucket": bucket}
