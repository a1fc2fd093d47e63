"""Driving jobs through a running imgpipe over HTTP, and the invariant every fault scenario ends with."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from support.stacks import AnyStack

__all__ = ["assert_invariant", "get_job", "photo", "upload", "wait_until"]


def photo(seed: int, size: tuple[int, int] = (1200, 800)) -> bytes:
    """A small, distinct JPEG photo-like image."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    image.paste((seed * 37 % 255, 80, 160), (0, 0, 100, 100))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(stack: AnyStack, data: bytes, filename: str = "p.jpg", timeout: float = 30) -> str:
    response = httpx.post(f"{stack.url}/api/v1/images", files={"file": (filename, data, "image/jpeg")}, timeout=timeout)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def get_job(stack: AnyStack, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{stack.url}/api/v1/images/{job_id}", timeout=10).json()
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, stack: AnyStack) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s:\n{stack.output()}")
        time.sleep(0.1)


def assert_invariant(
    stack: AnyStack, ids: list[str], timeout: float = 60, *, done: bool = True
) -> dict[str, dict[str, Any]]:
    """Every job ends DONE (or FAILED, if ``done`` is False) within ``timeout``; none stays PENDING or
    PROCESSING; each DONE job has exactly one object per variant. Returns the final jobs."""

    def final() -> bool:
        return all(get_job(stack, i)["status"] in ("DONE", "FAILED") for i in ids)

    wait_until(final, timeout, "every job DONE or FAILED", stack)
    jobs = {i: get_job(stack, i) for i in ids}
    processed = stack.keys("processed")
    for job_id, job in jobs.items():
        if done:
            assert job["status"] == "DONE", job
        if job["status"] == "DONE":
            made = [v["type"] for v in job["variants"]]
            assert made == ["original", "thumbnail"], job
            assert [k for k in processed if k.startswith(job_id)] == [f"{job_id}/thumbnail.jpg"]
    return jobs
