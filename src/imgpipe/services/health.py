"""Whether each backend answers: the readiness check and the doctor share it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from imgpipe.domain.errors import ImgpipeError
from imgpipe.domain.ports import JobQueue, JobRepository, ObjectStore

__all__ = ["check_backends"]


async def check_backends(*, jobs: JobRepository, queue: JobQueue, store: ObjectStore, within: float) -> dict[str, str]:
    """``{"database": "ok", "broker": "<why not>", "storage": "ok"}``, all asked at once."""
    probes = {"database": jobs.ping(), "broker": queue.ping(), "storage": store.ping()}
    answers = await asyncio.gather(*(_answer(p, within) for p in probes.values()))
    return dict(zip(probes, answers, strict=True))


async def _answer(probe: Awaitable[None], within: float) -> str:
    try:
        await asyncio.wait_for(probe, within)
    except ImgpipeError as exc:
        return exc.message
    except TimeoutError:
        return f"no answer within {within:g} s"
    except Exception as exc:  # a health check reports, it does not crash
        return f"{type(exc).__name__}: {exc}"
    return "ok"
