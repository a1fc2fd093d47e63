"""The two ways imgpipe runs, started as OS processes: embedded (``imgpipe run``) and the server stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.procs import AMQP_URL, Proc, S3Server, drop_queues, free_port, imgpipe_env, throwaway_database, wait_for_http

__all__ = ["Stack", "embedded_stack", "release", "server_stack"]

_IMGPIPE = [sys.executable, "-m", "imgpipe.cli"]
_KERNEL = "imgpipe.worker.kernel_child"


@dataclass
class Stack:
    """A running stack: its URL, its imgpipe processes, and the servers it leans on."""

    name: str
    concurrency: int
    url: str
    api: Proc
    worker: Proc  # the same process as ``api`` when embedded
    database: str | None = None  # the PostgreSQL database name, server stack only
    s3: S3Server | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.api is self.worker

    def kernels(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.worker.pid).children()
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                if _KERNEL in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.Error:
                continue
        return found

    def imgpipe_processes(self) -> dict[str, list[psutil.Process]]:
        """Role -> processes. Embedded: the one ``run`` process is both "api" and "worker": listed once, as api."""
        api = [psutil.Process(self.api.pid)]
        worker = [] if self.embedded else [psutil.Process(self.worker.pid)]
        return {"api": api, "worker": worker, "kernel": self.kernels()}

    def service_processes(self) -> dict[str, list[psutil.Process]]:
        if self.embedded:
            return {}
        assert self.s3 is not None
        return {
            "postgres": _postgres_processes(self.database or ""),
            "rabbitmq": _tree_of("beam.smp"),
            "s3": [psutil.Process(self.s3.proc.pid)],
        }


def _settings(concurrency: int, port: int) -> dict[str, str]:
    return {
        "IMGPIPE_WORKER_CONCURRENCY": str(concurrency),
        "IMGPIPE_PORT": str(port),
        "IMGPIPE_HOST": "127.0.0.1",
    }


@contextmanager
def embedded_stack(work: Path, concurrency: int, extra: dict[str, str] | None = None) -> Iterator[Stack]:
    """``imgpipe run`` on SQLite, a local folder and the in-process queue, in a fresh data folder."""
    data = work / f"embedded-{concurrency}-{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = imgpipe_env({**_settings(concurrency, port), "IMGPIPE_DATA_DIR": str(data), **(extra or {})})
    run = Proc([*_IMGPIPE, "run"], env, data.with_suffix(".log")).start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/ready", run)
        yield Stack("embedded", concurrency, url, run, run, extra_env=extra or {})
    finally:
        run.stop()
        release(data)


@contextmanager
def server_stack(work: Path, concurrency: int, s3: S3Server, extra: dict[str, str] | None = None) -> Iterator[Stack]:
    """``imgpipe migrate``, then ``imgpipe api`` and ``imgpipe worker`` on PostgreSQL, RabbitMQ and S3."""
    tag = f"bench{uuid.uuid4().hex[:8]}"
    port = free_port()
    with ExitStack() as cleanup:
        db_url = cleanup.enter_context(throwaway_database())
        queue = f"imgpipe.bench.{tag}"
        cleanup.callback(drop_queues, queue)
        env = imgpipe_env(
            {
                **_settings(concurrency, port),
                **s3.env(tag),
                "IMGPIPE_DATABASE_URL": db_url,
                "IMGPIPE_BROKER_URL": AMQP_URL,
                "IMGPIPE_QUEUE_NAME": queue,
                **(extra or {}),
            }
        )
        migrated = subprocess.run([*_IMGPIPE, "migrate"], env=env, capture_output=True, text=True, timeout=120)
        if migrated.returncode != 0:
            raise RuntimeError(f"imgpipe migrate failed:\n{migrated.stdout}{migrated.stderr}")
        api = Proc([*_IMGPIPE, "api"], env, work / f"{tag}-api.log").start()
        cleanup.callback(api.stop)
        worker = Proc([*_IMGPIPE, "worker"], env, work / f"{tag}-worker.log").start()
        cleanup.callback(worker.stop)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/ready", api)
        database = db_url.rsplit("/", 1)[-1]
        yield Stack("server", concurrency, url, api, worker, database=database, s3=s3, extra_env=extra or {})


def release(folder: Path) -> None:
    """Hand a stopped stack's page cache back to the free lists, keeping its inodes until the run ends.

    The next stack then writes into reused pages (``bench/memwarm.py``). Its files are
    emptied, not deleted: ext4 without a journal (this project's VM) passes over every free
    inode deleted within the last minute (six, while its inode table block is dirty) each
    time it allocates one (``recently_deleted`` in the kernel's ``fs/ext4/ialloc.c``).
    Deleting a stack's few thousand files made the next stack's API pay for that on each
    of its three new files per upload: 18% of its CPU in ``__ext4_new_inode`` against 0.7%
    in a fresh folder. The next run deletes the folder at its start (``bench/scratch.py``).
    """
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.truncate(path, 0)


def _tree_of(name: str) -> list[psutil.Process]:
    roots = [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]
    found = list(roots)
    for root in roots:
        try:
            found.extend(root.children(recursive=True))
        except psutil.Error:
            continue
    return found


def _postgres_processes(database: str) -> list[psutil.Process]:
    """The postmaster, its shared helpers (WAL writer, checkpointer...) and the backends of our database only.

    Backends of other databases belong to whoever else uses this server.
    """
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] != "postgres":
            continue
        title = " ".join(proc.info["cmdline"] or [])
        is_backend = "(" in title or "[local]" in title  # "postgres: 15/main: user db 127.0.0.1(port) idle"
        if not is_backend or f" {database} " in title:
            found.append(proc)
    return found
