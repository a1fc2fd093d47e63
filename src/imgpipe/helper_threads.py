"""``helper_pool``: thread pools whose threads do not preempt the event loop's thread when they wake.

A serving process hands its blocking calls (fsyncs, renames, the probe, PostgreSQL's
transactions) to pool threads. Linux lets a thread that wakes take the CPU from the
thread running there, and the one running is most often the event loop's, which holds
the GIL the woken thread then waits for: a switch there and back for nothing. Under
``SCHED_BATCH`` a thread still runs at once on an idle core, but does not preempt.

Measured with 12 MP JPEGs, alternating pairs against plain pools: on the embedded stack (7 pairs
of 400 uploads) the event loop's thread was preempted 3.4-3.8 times per image against 10.3-12.9,
and the ``run`` process spent 5.86 against 6.28 ms of CPU per image (means); on the server stack
(3 pairs of 300) the API spent 5.97-6.33 against 6.73-7.07 ms, the worker 4.73-4.97 against 5.10-5.47.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["helper_pool"]


def helper_pool(max_workers: int | None = None, *, name: str = "") -> ThreadPoolExecutor:
    """A pool (``ThreadPoolExecutor``'s default size when ``max_workers`` is None) of non-preempting threads."""
    return ThreadPoolExecutor(max_workers, thread_name_prefix=name, initializer=_no_preemption)


def _no_preemption() -> None:
    # Any thread may move between SCHED_OTHER and SCHED_BATCH; elsewhere than Linux there is none.
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
