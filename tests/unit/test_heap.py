"""``keep_heap``: image-sized buffers reuse the pages the last image freed, instead of faulting in new ones.

The rounds run in a process of their own: malloc's thresholds are the whole process's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

import pytest

from imgpipe import serve
from imgpipe.heap import keep_heap

# Rounds of photo-sized buffers in flight at once, then freed, as uploads and fetched originals are.
_ROUNDS = """
import json, resource, sys
from imgpipe.heap import keep_heap
kept = keep_heap(int(sys.argv[1]))
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    held = [bytearray(mb << 20) for mb in (3, 5, 2, 6)]
    del held
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": faults}))
"""


def _rounds(nbytes: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _ROUNDS, str(nbytes)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_kept_heap_serves_the_next_rounds_buffers_without_new_pages() -> None:
    kept = _rounds(32 * 1024 * 1024)
    assert kept["kept"] is True
    assert kept["faults"][0] > 2000  # 16 MiB touched for the first time: about 4,000 pages
    assert max(kept["faults"][1:]) < 100, kept["faults"]


def test_without_it_every_round_faults_its_buffers_in_again() -> None:
    default = _rounds(0)
    assert default["kept"] is False
    assert min(default["faults"][1:]) > 2000, default["faults"]  # glibc hands most of it back each round


@pytest.mark.parametrize(("command", "applied"), [("api", True), ("worker", True), ("run", True), ("migrate", False)])
def test_the_serving_processes_keep_the_configured_heap(
    monkeypatch: pytest.MonkeyPatch, command: str, applied: bool
) -> None:
    calls: list[int] = []
    monkeypatch.setenv("IMGPIPE_KEEP_HEAP_MB", "48")
    monkeypatch.setenv("IMGPIPE_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")  # api and worker refuse memory://
    monkeypatch.setattr(serve, "keep_heap", calls.append)
    monkeypatch.setattr(serve, "_asyncio_run", lambda coro: coro.close() or 0)  # nothing is served
    assert serve.main(argparse.Namespace(command=command, no_migrate=False, json=False)) == 0
    assert calls == ([48 * 1024 * 1024] if applied else [])


def test_zero_keeps_glibcs_own_thresholds() -> None:
    assert keep_heap(0) is False
