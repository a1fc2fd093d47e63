"""Crashes lose nothing: SIGKILL mid-batch and mid-job, restart, and every job ends DONE exactly once."""

from __future__ import annotations

import pytest

from support.jobs import assert_invariant, get_job, photo, upload, wait_until
from support.stacks import AnyStack, ServerStack

pytestmark = pytest.mark.e2e


def test_sigkill_with_jobs_queued_and_processing_then_restart_finishes_every_job(fresh_stack: AnyStack) -> None:
    stack = fresh_stack
    # Freeze the kernels so jobs are caught mid-processing and the rest wait in the queue.
    for process in stack.processes:
        process.freeze_kernels()
    ids = [upload(stack, photo(i)) for i in range(12)]
    wait_until(
        lambda: sum(get_job(stack, i)["status"] == "PROCESSING" for i in ids) >= 1,
        20,
        "a job PROCESSING",
        stack,
    )
    statuses = {get_job(stack, i)["status"] for i in ids}
    assert statuses <= {"PENDING", "PROCESSING"}, statuses

    stack.crash()
    stack.start()
    assert_invariant(stack, ids)


def test_a_worker_killed_mid_job_is_replaced_and_the_job_ends_done_once(server_stack: ServerStack) -> None:
    stack = server_stack
    [worker] = stack.worker_processes
    worker.freeze_kernels()
    job_id = upload(stack, photo(1))
    # The worker has downloaded the original and is inside the kernel: kill it there.
    wait_until(lambda: get_job(stack, job_id)["status"] == "PROCESSING", 20, "job PROCESSING", stack)
    stack.kill(worker)
    stack.start_worker()
    assert_invariant(stack, [job_id])
    assert get_job(stack, job_id)["attempts"] == 2
