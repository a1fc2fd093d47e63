"""Memory the machine has never used: what writing into it costs, and warming it before anything is timed.

On a virtual machine whose host backs guest memory lazily, the first write to a guest page
costs a fault in the host, charged to whichever process touches the page first as system
time. A pipeline run grows the page cache by every upload it stores, so on a freshly booted
VM imgpipe's API process would be charged the host's work: measured on this project's 2-core
VM, writing and syncing a 1.5 MB file into never-used page cache cost 2.0 ms of system time, against 0.5 into
pages used before. A server that has been up for a while recycles its page cache and pays
nothing of the kind. ``measure`` records both costs for the report; ``warm`` touches free
memory once, so that every tool, imgpipe's and the references alike, runs on used pages.
"""

from __future__ import annotations

import mmap
import os
import resource
import tempfile
import time
from pathlib import Path

import psutil

__all__ = ["free_page_reporting", "measure", "summary", "warm"]

_PAGE = mmap.PAGESIZE
_CHUNK = 1 << 20
_VIRTIO = Path("/sys/bus/virtio/devices")
_BALLOON = 0x0005  # virtio device id of the memory balloon
_REPORTING = 5  # VIRTIO_BALLOON_F_REPORTING: free memory is handed back to the host


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _write_cost(path: Path, megabytes: int) -> float:
    """CPU ms per MB to write ``megabytes`` into a new file's page cache (no fsync: the copy is what is timed)."""
    chunk = os.urandom(_CHUNK)
    before = _cpu()
    with path.open("wb") as f:
        for _ in range(megabytes):
            f.write(chunk)
    return (_cpu() - before) * 1000 / megabytes


def measure(megabytes: int = 256) -> dict[str, float]:
    """Page-cache write cost into pages this run has not used yet, then into the same pages freed and reused."""
    with tempfile.TemporaryDirectory(prefix="imgpipe-bench-memwarm-") as tmp:
        first, second = Path(tmp) / "1", Path(tmp) / "2"
        fresh = _write_cost(first, megabytes)
        os.sync()
        first.unlink()  # its pages go back to the free lists, still backed by the host
        reused = _write_cost(second, megabytes)
    return {"fresh_ms_per_mb": fresh, "reused_ms_per_mb": reused, "megabytes": megabytes}


def warm(gigabytes: float) -> dict[str, float]:
    """Write one byte to every page of ``gigabytes`` of anonymous memory, then free it.

    At most half the memory available, so the warm-up itself never pushes anything out.
    """
    size = int(min(gigabytes * 2**30, psutil.virtual_memory().available / 2)) // _PAGE * _PAGE
    t0 = time.monotonic()
    with mmap.mmap(-1, size) as memory:
        memory[::_PAGE] = b"\x01" * (size // _PAGE)
    return {"gigabytes": size / 2**30, "seconds": time.monotonic() - t0}


def free_page_reporting(devices: Path = _VIRTIO) -> bool:
    """Whether this guest hands the memory it frees back to its host (a virtio balloon with free page reporting).

    The host then takes back what the guest frees (in 2 MB blocks, within seconds), and the
    next write into it faults in the host again: ``warm`` helps only until memory is freed once
    more. The peer section measures the page-cache cost again just before it runs.
    """
    for device in devices.glob("*"):
        try:
            kind = int((device / "device").read_text(), 16)
            features = (device / "features").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind == _BALLOON and len(features) > _REPORTING and features[_REPORTING] == "1":
            return True
    return False


def summary(measured: dict[str, float], warmed: dict[str, float]) -> str:
    """One line for the report's machine table."""
    return (
        f"{measured['fresh_ms_per_mb']:.2f} CPU ms per MB into pages this run had not used, "
        f"{measured['reused_ms_per_mb']:.2f} into reused ones; then {warmed['gigabytes']:.1f} GiB of free memory "
        f"touched once ({warmed['seconds']:.1f} s) before any timing (`bench/memwarm.py`)"
        + (
            "; this VM hands the memory it frees back to its host (virtio-balloon free page reporting), "
            "so the warm-up lasts only until memory is freed again, and later writes fault in the host anew"
            if warmed.get("reporting")
            else ""
        )
    )
