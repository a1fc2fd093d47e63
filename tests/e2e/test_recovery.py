"""Crashes lose nothing: SIGKILL mid-batch and mid-job, restart, and every job ends DONE exactly once."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from support.stacks import AnyStack, ServerStack

pytestmark = pytest.mark.e2e


def photo(seed: int) -> bytes:
    image = Image.linear_gradient("L").resize((1200, 800)).convert("RGB")
    image.paste((seed * 37 % 255, 80, 160), (0, 0, 100, 100))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def upload(stack: AnyStack, data: bytes) -> str:
    response = httpx.post(f"{stack.url}/api/v1/images", files={"file": ("p.jpg", data, "image/jpeg")}, timeout=30)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def job(stack: AnyStack, job_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{stack.url}/api/v1/images/{job_id}", timeout=10).json()
    return found


def wait_until(predicate: Any, timeout: float, what: str, stack: AnyStack) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s:\n{stack.output()}")
        time.sleep(0.1)


def assert_all_done_once(stack: AnyStack, ids: list[str], timeout: float = 60) -> None:
    wait_until(lambda: all(job(stack, i)["status"] == "DONE" for i in ids), timeout, "every job DONE", stack)
    thumbnails = stack.keys("processed")
    for job_id in ids:
        # Exactly one object per variant, whatever was retried or redelivered.
        assert [k for k in thumbnails if k.startswith(job_id)] == [f"{job_id}/thumbnail.jpg"]
        assert [v["type"] for v in job(stack, job_id)["variants"]] == ["original", "thumbnail"]


def test_sigkill_with_jobs_queued_and_processing_then_restart_finishes_every_job(fresh_stack: AnyStack) -> None:
    stack = fresh_stack
    # Freeze the kernels so jobs are caught mid-processing and the rest wait in the queue.
    for process in stack.processes:
        process.freeze_kernels()
    ids = [upload(stack, photo(i)) for i in range(12)]
    wait_until(
        lambda: sum(job(stack, i)["status"] == "PROCESSING" for i in ids) >= 1,
        20, "a job PROCESSING", stack,
    )
    statuses = {job(stack, i)["status"] for i in ids}
    assert statuses <= {"PENDING", "PROCESSING"}, statuses

    stack.crash()
    stack.start()
    assert_all_done_once(stack, ids)


def test_a_worker_killed_mid_job_is_replaced_and_the_job_ends_done_once(server_stack: ServerStack) -> None:
    stack = server_stack
    [worker] = stack.worker_processes
    worker.freeze_kernels()
    job_id = upload(stack, photo(1))
    # The worker has downloaded the original and is inside the kernel: kill it there.
    wait_until(lambda: job(stack, job_id)["status"] == "PROCESSING", 20, "job PROCESSING", stack)
    stack.kill(worker)
    stack.start_worker()
    assert_all_done_once(stack, [job_id])
    assert job(stack, job_id)["attempts"] == 2
