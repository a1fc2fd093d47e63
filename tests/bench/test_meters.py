"""The meter splits a process's CPU seconds into user space and the operating system's kernel."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil
from bench.meters import Meter, Metered


def _metered(work: Callable[[], object]) -> Metered:
    meter = Meter(lambda: {"me": [psutil.Process()]}, interval=0.05)
    with meter:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            work()
    assert meter.result is not None
    return meter.result


def test_cpu_spent_in_system_calls_is_counted_apart_from_user_space() -> None:
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        calls = _metered(lambda: os.write(fd, b"x"))  # little but the kernel's entry and exit
    finally:
        os.close(fd)
    python = _metered(lambda: sum(range(1000)))  # no system call at all

    for result in (calls, python):
        assert result.cpu["me"] >= 0.25
        assert 0.0 <= result.system["me"] <= result.cpu["me"]
    assert calls.system["me"] / calls.cpu["me"] > python.system["me"] / python.cpu["me"] + 0.2
