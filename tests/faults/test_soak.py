"""Scenario 13: a soak of uploads while workers are killed at random. CI runs a shorter one
(IMGPIPE_SOAK_JOBS, default 200); `make soak` runs the full 1,000."""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest

from support.jobs import assert_invariant, photo, upload
from support.stacks import ServerStack, make_stack

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
WORKER_LIMIT_MB = 512  # a worker with its kernel process, as a container limit would count it


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        return int(sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
    except psutil.NoSuchProcess:
        return 0


@pytest.mark.timeout(1800)  # the full soak (make soak) takes minutes; CI's takes about half a minute
def test_a_soak_with_random_worker_kills_loses_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, record: dict[str, Any]
) -> None:
    jobs = int(os.environ.get("IMGPIPE_SOAK_JOBS", "200"))
    rng = random.Random(13)
    settings = {"IMGPIPE_WORKER_CONCURRENCY": "1", "IMGPIPE_KERNEL_MAX_RSS_MB": "256"}
    with make_stack("server", request, tmp_path, **settings) as stack:
        assert isinstance(stack, ServerStack)
        stack.start_worker()
        images = [photo(i, (rng.randrange(400, 2400), rng.randrange(300, 1800))) for i in range(20)]
        stop = threading.Event()
        kills, peak = 0, 0

        def chaos() -> None:
            nonlocal kills
            while not stop.wait(rng.uniform(1.0, 2.5)):
                victim = rng.choice(stack.worker_processes)
                stack.kill(victim)
                kills += 1
                stack.start_worker(wait=False)

        def watch() -> None:
            nonlocal peak
            while not stop.wait(0.25):
                for worker in list(stack.worker_processes):
                    peak = max(peak, _tree_rss(worker.pid))

        threads = [threading.Thread(target=chaos), threading.Thread(target=watch)]
        for t in threads:
            t.start()
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(4) as pool:
                ids = list(pool.map(lambda i: upload(stack, images[i % len(images)]), range(jobs)))
            # Keep killing a little longer, while the backlog drains.
            time.sleep(3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        final = assert_invariant(stack, ids, timeout=max(120, jobs * 0.5))
        elapsed = time.monotonic() - started
    attempts = [j["attempts"] for j in final.values()]
    assert peak < WORKER_LIMIT_MB * MiB, f"a worker reached {peak / MiB:.0f} MiB"
    record.update(
        scenario="13. Soak: uploads while workers are killed at random",
        done=f"{jobs} uploads (4 at a time, 20 photo sizes) to 2 workers; a random worker SIGKILLed and replaced "
        f"every 1-2.5 s ({kills} kills)",
        observed=f"{jobs}/{jobs} DONE in {elapsed:.0f} s: 0 lost, 0 stuck, one thumbnail each; "
        f"{sum(a > 1 for a in attempts)} jobs needed a second attempt; peak worker RSS (with its kernel process) "
        f"{peak / MiB:.0f} MiB (limit {WORKER_LIMIT_MB} MiB)",
    )
