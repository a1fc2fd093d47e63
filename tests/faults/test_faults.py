"""Faults on every link and real process kills: every accepted upload ends DONE or FAILED, nothing is lost,
and each DONE job has exactly one object per variant."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from typing import Any
from uuid import uuid4

import httpx
import pytest

from support.faultstack import FaultyStack
from support.jobs import assert_invariant, get_job, photo, upload, wait_until
from support.processes import ImgpipeProcess
from support.services import run_sync

pytestmark = pytest.mark.e2e


def processing(fs: FaultyStack, job_id: str) -> None:
    wait_until(lambda: get_job(fs.stack, job_id)["status"] == "PROCESSING", 20, "job PROCESSING", fs.stack)


def job_in_hand(fs: FaultyStack, seed: int) -> tuple[ImgpipeProcess, str]:
    """The stack's one worker and a job it holds PROCESSING, its kernels frozen until the test thaws them."""
    [worker] = fs.stack.worker_processes
    worker.freeze_kernels()
    job_id = upload(fs.stack, photo(seed))
    processing(fs, job_id)
    return worker, job_id


def publish_raw(fs: FaultyStack, *bodies: bytes) -> None:
    """Put messages on the job queue directly, as a buggy or duplicate producer would."""
    import aio_pika

    async def go() -> None:
        connection = await aio_pika.connect(fs.env["IMGPIPE_BROKER_URL"])
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            for body in bodies:
                await channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=fs.env["IMGPIPE_QUEUE_NAME"],
                )

    run_sync(go())


def queue_depths(fs: FaultyStack) -> tuple[int, int]:
    import aio_pika

    async def go() -> tuple[int, int]:
        connection = await aio_pika.connect(fs.env["IMGPIPE_BROKER_URL"])
        async with connection:
            channel = await connection.channel()
            name = fs.env["IMGPIPE_QUEUE_NAME"]
            main = await channel.declare_queue(name, passive=True)
            dead = await channel.declare_queue(f"{name}.dead", passive=True)
            return main.declaration_result.message_count or 0, dead.declaration_result.message_count or 0

    return run_sync(go())


def message(job_id: str) -> bytes:
    return f'{{"v":1,"job_id":"{job_id}"}}'.encode()


def test_worker_killed_after_download_before_storing_the_thumbnail(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    worker, job_id = job_in_hand(fs, 1)
    fs.stack.kill(worker)
    fs.stack.start_worker()
    job = assert_invariant(fs.stack, [job_id])[job_id]
    assert job["attempts"] == 2
    record.update(
        scenario="1. SIGKILL a worker after it downloaded the original, before it stored the thumbnail",
        done="Kernel frozen mid-job (SIGSTOP), worker SIGKILLed while the job was PROCESSING, new worker started",
        observed=f"redelivered and taken over: DONE after {job['attempts']} attempts, one thumbnail",
    )


def test_worker_killed_after_done_before_the_ack(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    worker, job_id = job_in_hand(fs, 2)
    # From now on nothing the worker sends reaches RabbitMQ: its ack will never arrive.
    fs.worker.rabbitmq.blackhole()
    worker.thaw_kernels()
    wait_until(lambda: get_job(fs.stack, job_id)["status"] == "DONE", 20, "job DONE", fs.stack)
    fs.stack.kill(worker)
    fs.worker.rabbitmq.reset()
    fs.worker.rabbitmq.up()
    second = fs.stack.start_worker()
    wait_until(lambda: job_id in second.output() and "delivery skipped" in second.output(), 30, "redelivery", fs.stack)
    job = assert_invariant(fs.stack, [job_id])[job_id]
    assert job["status"] == "DONE" and job["attempts"] == 1
    wait_until(lambda: queue_depths(fs)[0] == 0, 10, "queue drained", fs.stack)
    record.update(
        scenario="2. SIGKILL a worker after the database says DONE, before the ack",
        done="Worker's RabbitMQ link blackholed, job completed (DONE in the database), worker SIGKILLed, "
        "new worker started",
        observed="the message was redelivered to the new worker, which logged 'delivery skipped'; "
        f"status stayed DONE, attempts {job['attempts']}, one thumbnail, queue empty",
    )


@pytest.mark.settings(IMGPIPE_SHUTDOWN_GRACE_SECONDS="2")
def test_sigterm_mid_job_finishes_within_the_grace_or_hands_the_job_back(
    faulty: FaultyStack, record: dict[str, Any]
) -> None:
    fs = faulty
    [worker] = fs.stack.worker_processes
    # (a) The job finishes inside the grace period: the worker completes it, then exits cleanly.
    worker.freeze_kernels()
    finishing = upload(fs.stack, photo(3))
    processing(fs, finishing)
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.thaw_kernels()
    assert worker.process.wait(15) == 0
    first = get_job(fs.stack, finishing)
    assert first["status"] == "DONE" and first["attempts"] == 1

    # (b) The job cannot finish in time: it is handed back and another worker does it.
    fs.stack.processes.remove(worker)
    worker = fs.stack.start_worker()
    worker.freeze_kernels()
    stuck = upload(fs.stack, photo(4))
    processing(fs, stuck)
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(15) == 0
    assert "jobs handed back" in worker.output()
    assert get_job(fs.stack, stuck)["status"] == "PENDING"
    fs.stack.start_worker()
    jobs = assert_invariant(fs.stack, [finishing, stuck])
    record.update(
        scenario="3. SIGTERM a worker mid-job",
        done="SIGTERM with a 2 s grace: (a) kernel resumed within the grace, (b) kernel kept frozen past it",
        observed=f"(a) finished by the stopping worker, exit 0, DONE in 1 attempt; (b) handed back as PENDING, "
        f"exit 0, finished by the next worker: DONE in {jobs[stuck]['attempts']} attempts",
    )


def test_broker_restart_with_hundreds_of_jobs_queued(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    [worker] = fs.stack.worker_processes
    worker.freeze_kernels()
    small = photo(5, (320, 240))
    ids = [upload(fs.stack, small) for _ in range(200)]
    ctl = ["rabbitmqctl", "-q"]
    try:
        subprocess.run([*ctl, "stop_app"], check=True, capture_output=True, timeout=120)
        time.sleep(1)
    finally:
        # Whatever happens, the shared broker comes back for the rest of the suite.
        subprocess.run([*ctl, "start_app"], check=True, capture_output=True, timeout=120)
        subprocess.run([*ctl, "await_startup"], check=True, capture_output=True, timeout=120)
    worker.thaw_kernels()
    ids.append(upload(fs.stack, small))  # the API reconnected by itself
    jobs = assert_invariant(fs.stack, ids, timeout=180)
    record.update(
        scenario="4. Restart RabbitMQ with hundreds of jobs queued",
        done=f"{len(ids) - 1} jobs queued behind a frozen kernel; `rabbitmqctl stop_app` / `start_app`; "
        "one more upload after the restart",
        observed=f"API and worker reconnected by themselves; {sum(j['status'] == 'DONE' for j in jobs.values())}"
        f"/{len(ids)} DONE, one thumbnail each, none lost",
    )


def test_uploads_while_the_broker_is_unreachable_are_kept_and_published_later(
    faulty: FaultyStack, record: dict[str, Any]
) -> None:
    fs = faulty
    ids, slowest = [], 0.0
    with fs.api.rabbitmq.outage():
        ready = httpx.get(f"{fs.stack.url}/ready", timeout=10)
        for i in range(5):
            started = time.monotonic()
            ids.append(upload(fs.stack, photo(10 + i), timeout=15))
            slowest = max(slowest, time.monotonic() - started)
    assert ready.status_code == 503 and "broker" in ready.json()["detail"]
    assert_invariant(fs.stack, ids)
    record.update(
        scenario="5. Broker unreachable during uploads",
        done="The API's RabbitMQ link cut (connections reset, new ones refused) during 5 uploads",
        observed=f"/ready answered 503 naming the broker; each upload answered 202 within {slowest:.2f} s "
        "(job recorded, message not confirmed); the reconciler published them once the link was back: 5/5 DONE",
    )


def test_api_dies_between_the_commit_and_the_publish(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    fs.api.rabbitmq.blackhole()  # the publish will wait for a confirm that never comes
    before = set(fs.stack.keys("original"))

    def post() -> None:
        try:
            httpx.post(f"{fs.stack.url}/api/v1/images", files={"file": ("p.jpg", photo(20))}, timeout=30)
        except httpx.HTTPError:
            pass

    poster = threading.Thread(target=post)
    poster.start()
    wait_until(lambda: len(set(fs.stack.keys("original")) - before) == 1, 20, "original stored", fs.stack)
    time.sleep(0.5)  # the row is committed right after the original; the publish is pending
    fs.stack.kill(fs.stack.api)
    poster.join(30)
    fs.api.rabbitmq.reset()
    fs.api.rabbitmq.up()
    [key] = set(fs.stack.keys("original")) - before
    job_id = key.split(".")[0]
    fs.stack.start_api()
    job = assert_invariant(fs.stack, [job_id])[job_id]
    record.update(
        scenario="6. The API dies between the database commit and the publish",
        done="The API's RabbitMQ link blackholed so the publish hung waiting for its confirm; API SIGKILLed",
        observed=f"the client got no answer; the row was the outbox: the worker's reconciler published it, "
        f"job {job['status']}, one thumbnail",
    )


def test_database_unreachable_while_a_worker_processes(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    worker, job_id = job_in_hand(fs, 30)
    with fs.worker.postgres.outage():
        worker.thaw_kernels()
        time.sleep(3)  # the kernel finishes; recording DONE fails; the message is given back, not acked
        assert get_job(fs.stack, job_id)["status"] == "PROCESSING"
    job = assert_invariant(fs.stack, [job_id])[job_id]
    assert "database" in worker.output().lower()
    record.update(
        scenario="7. PostgreSQL unreachable while a worker processes",
        done="The worker's PostgreSQL link cut for 3 s while its job was in the kernel",
        observed=f"no ack while the database was away (job stayed PROCESSING); retried after recovery: "
        f"DONE after {job['attempts']} attempts, one thumbnail",
    )


@pytest.mark.settings(IMGPIPE_STORAGE_RETRIES="3", IMGPIPE_S3_TIMEOUT_SECONDS="1")
def test_storage_failing_fails_the_job_after_bounded_retries_and_others_flow(
    faulty: FaultyStack, record: dict[str, Any]
) -> None:
    fs = faulty
    fs.worker.s3.down()
    refused = upload(fs.stack, photo(40))
    wait_until(lambda: get_job(fs.stack, refused)["status"] == "FAILED", 30, "job FAILED", fs.stack)
    fs.worker.s3.up()
    fs.worker.s3.blackhole()
    hanging = upload(fs.stack, photo(41))
    wait_until(lambda: get_job(fs.stack, hanging)["status"] == "FAILED", 60, "job FAILED", fs.stack)
    fs.worker.s3.up()
    fs.worker.s3.reset()
    flowing = [upload(fs.stack, photo(42 + i)) for i in range(3)]
    jobs = assert_invariant(fs.stack, [refused, hanging, *flowing], done=False)
    assert [jobs[i]["error"]["code"] for i in (refused, hanging)] == ["storage_unavailable"] * 2
    assert all(jobs[i]["status"] == "DONE" for i in flowing)
    record.update(
        scenario="8. Storage failing (errors, then timeouts)",
        done="The worker's S3 link refused, then blackholed (1 s timeouts); 3 retries with backoff each",
        observed="both jobs FAILED with storage_unavailable after their bounded retries; once storage was back, "
        "3/3 new jobs DONE",
    )


def test_duplicate_and_late_messages_give_one_result(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    job_id = upload(fs.stack, photo(50))
    publish_raw(fs, message(job_id), message(job_id))  # delivered twice more, at once
    first = assert_invariant(fs.stack, [job_id])[job_id]
    publish_raw(fs, message(job_id))  # a late duplicate after DONE
    [worker] = fs.stack.worker_processes
    wait_until(lambda: worker.output().count("delivery skipped") >= 3, 20, "three skips", fs.stack)
    after = get_job(fs.stack, job_id)
    assert after["status"] == "DONE" and after["attempts"] == first["attempts"] == 1
    assert after["finished_at"] == first["finished_at"]
    record.update(
        scenario="9. The same message delivered twice, and a late duplicate after DONE",
        done="Two extra copies of the job's message published at once, a third after DONE",
        observed="one result: DONE in 1 attempt, one thumbnail; the three duplicates logged 'delivery skipped', "
        "finished_at unchanged",
    )


def test_malformed_and_unknown_messages_are_dead_lettered(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    publish_raw(fs, b"not json at all", b'{"v":1,"job_id":"' + str(uuid4()).encode() + b'"}')
    wait_until(lambda: queue_depths(fs)[1] == 2, 20, "two dead letters", fs.stack)
    flowing = upload(fs.stack, photo(60))
    assert_invariant(fs.stack, [flowing])
    record.update(
        scenario="10. A malformed message, and one for an unknown job",
        done="Published 'not json at all' and a message naming a job that does not exist",
        observed="both dead-lettered at once (dead-letter queue: 2); the next job DONE",
    )


def test_a_message_whose_processing_always_crashes_the_worker_ends_failed(
    faulty: FaultyStack, record: dict[str, Any]
) -> None:
    fs = faulty
    [worker] = fs.stack.worker_processes
    worker.freeze_kernels()
    poison = upload(fs.stack, photo(70))
    crashes = 0

    def held_or_failed() -> bool:
        job = get_job(fs.stack, poison)
        return job["status"] == "FAILED" or (job["status"] == "PROCESSING" and job["attempts"] == crashes + 1)

    while True:
        wait_until(held_or_failed, 30, "the job taken or failed", fs.stack)
        if get_job(fs.stack, poison)["status"] == "FAILED":
            break
        # The worker dies with the job in its hands, every time (as with an image that
        # segfaults the decoder in-process, or the OOM killer).
        fs.stack.kill(worker)
        crashes += 1
        # The next worker may only meet the message once its kernels are frozen: keep its
        # broker link down until then.
        fs.worker.rabbitmq.down()
        worker = fs.stack.start_worker(wait=False)
        wait_until(lambda: len(worker.kernel_pids()) == 2, 30, "kernels started", fs.stack)  # noqa: B023
        worker.freeze_kernels()
        fs.worker.rabbitmq.up()
    job = get_job(fs.stack, poison)
    assert job["status"] == "FAILED" and job["error"]["code"] == "processing_crashed", job
    assert crashes == 3  # the attempt limit
    worker.thaw_kernels()
    flowing = upload(fs.stack, photo(71))
    assert_invariant(fs.stack, [poison, flowing], done=False)
    assert get_job(fs.stack, flowing)["status"] == "DONE"
    record.update(
        scenario="11. A message whose processing always crashes the worker",
        done="The worker was SIGKILLed every time it held the job, and a new one started",
        observed=f"redelivered and taken over after each of {crashes} crashes; at the 4th delivery the attempt "
        "limit (3) ended it FAILED processing_crashed and the message was acked (the broker's delivery limit, 10, "
        "stays the backstop); the next job was DONE",
    )


@pytest.mark.settings(IMGPIPE_JOB_TIMEOUT_SECONDS="2")
def test_a_hanging_job_is_ended_by_the_hard_timeout(faulty: FaultyStack, record: dict[str, Any]) -> None:
    fs = faulty
    [worker] = fs.stack.worker_processes
    frozen = worker.freeze_kernels()
    hung = upload(fs.stack, photo(80))
    wait_until(lambda: get_job(fs.stack, hung)["status"] == "FAILED", 30, "job FAILED", fs.stack)
    job = get_job(fs.stack, hung)
    assert job["error"]["code"] == "processing_timeout"
    assert worker.alive
    worker.thaw_kernels()  # the other kernel process was frozen too
    flowing = upload(fs.stack, photo(81))
    assert_invariant(fs.stack, [hung, flowing], done=False)
    assert get_job(fs.stack, flowing)["status"] == "DONE"
    # The hung kernel process (one of the two frozen) was killed and replaced.
    assert len(set(frozen) - set(worker.kernel_pids())) == 1 and len(worker.kernel_pids()) == 2
    record.update(
        scenario="12. A job whose processing hangs",
        done="Kernel process frozen (SIGSTOP) with a 2 s hard timeout",
        observed="FAILED processing_timeout after 2 s; the hung kernel process was killed and replaced; "
        "the worker lived on and the next job was DONE",
    )


def test_a_broker_connection_cut_mid_job_does_not_render_the_job_twice(
    faulty: FaultyStack, record: dict[str, Any]
) -> None:
    fs = faulty
    worker, job_id = job_in_hand(fs, 90)
    # The worker's link to RabbitMQ is cut with the job in hand: the broker requeues the unacked
    # message, and the worker's reconnected consumer gets it again while the first attempt renders.
    fs.worker.rabbitmq.reset()
    wait_until(lambda: "the new delivery waits for it" in worker.output(), 30, "the redelivery", fs.stack)
    assert get_job(fs.stack, job_id)["attempts"] == 1  # not taken over
    worker.thaw_kernels()
    job = assert_invariant(fs.stack, [job_id])[job_id]
    assert job["attempts"] == 1
    wait_until(lambda: worker.output().count("delivery skipped") == 1, 20, "the redelivery settled", fs.stack)
    wait_until(lambda: queue_depths(fs) == (0, 0), 10, "queue drained", fs.stack)
    record.update(
        scenario="14. The worker's connection to RabbitMQ is cut mid-job",
        done="Kernel frozen mid-job, the worker's RabbitMQ link reset (TCP RST); aio-pika reconnected and the "
        "broker redelivered the unacked message to the same worker",
        observed="the redelivery waited for the worker's own attempt instead of taking the job over: DONE in "
        f"{job['attempts']} attempt, one render, one thumbnail; the redelivery was then skipped and acked, "
        "queue and dead-letter queue empty",
    )
