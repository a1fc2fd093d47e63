"""Where the stacks keep their data during a run, and what creating a file there costs.

ext4 without a journal (this project's VM) passes over every free inode deleted within
the last minute (six, while its inode table block is dirty) each time it creates a file
(``recently_deleted`` in the kernel's ``fs/ext4/ialloc.c``). In a /tmp where thousands of
files had been deleted minutes before, a new file cost 460-585 us of CPU against 44-90 in a
fresh folder, and the embedded API process creates three per upload: in a run started right
after the test suite, its CPU per image read 10.8 ms against 6.4. So the stacks' data goes
under ``bench/.cache/runs``, away from /tmp and its churn; a run empties
its files instead of deleting them (``stacks.release``) and the next run deletes them at
its start, minutes before its first stack; and the report gives what a new file cost in
that folder just before the pipelines ran.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.corpus import CACHE
from bench.stacks import release

__all__ = ["RUNS", "file_creation_cost", "work_folder"]

RUNS = CACHE / "runs"
_LOCK = ".in-use"


@contextmanager
def work_folder(runs: Path = RUNS) -> Iterator[Path]:
    """A new folder for this run's stacks, made after deleting what finished runs left (emptied files).

    A run holds a lock on its folder while it lasts: a run going on beside this one keeps
    its folder. On exit the folder's files are emptied, not deleted (``stacks.release``).
    """
    runs.mkdir(parents=True, exist_ok=True)
    for earlier in runs.iterdir():
        if earlier.is_dir() and not _in_use(earlier):
            shutil.rmtree(earlier, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    with open(work / _LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield work
        finally:
            release(work)


def _in_use(folder: Path) -> bool:
    try:
        with open(folder / _LOCK) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no lock file: a folder of a run that did not get that far
        return False
    return False


def file_creation_cost(folder: Path, count: int = 300) -> float:
    """CPU microseconds per new empty file in a new subfolder of ``folder``, as the stores make them."""
    probe = Path(tempfile.mkdtemp(prefix="creation-probe-", dir=folder))
    started = time.process_time()
    for i in range(count):
        (probe / f"{i}.part").touch()
    return (time.process_time() - started) / count * 1e6
