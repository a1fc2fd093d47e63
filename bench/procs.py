"""OS processes the benchmark starts: imgpipe commands, the S3 stand-in, throwaway databases and queues."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

__all__ = [
    "Proc",
    "Running",
    "S3Server",
    "delete_queues",
    "drop_queues",
    "free_port",
    "imgpipe_env",
    "reachable",
    "start_s3_server",
    "throwaway_database",
    "wait_for_answer",
    "wait_for_http",
]

PG_ADMIN_URL = os.environ.get("IMGPIPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("IMGPIPE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def imgpipe_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any IMGPIPE_* variable, plus ``extra``: nothing leaks in from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPIPE_")}
    env.update({"IMGPIPE_LOG_FORMAT": "json", "IMGPIPE_LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class Running:
    """``pid`` and ``alive`` of the child process a subclass holds as ``process`` (the tests' processes too)."""

    process: subprocess.Popen[bytes] | None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Proc(Running):
    """One child process whose output goes to a log file."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL (with every descendant) if it does not stop in time."""
        if not self.alive:
            return
        assert self.process is not None
        try:
            descendants = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def wait_for_answer(url: str, alive: Callable[[], bool], timeout: float, failed: Callable[[bool], Exception]) -> None:
    """Poll ``url`` until it answers 200; raise ``failed(True)`` if the process behind it ends first, and
    ``failed(False)`` when time runs out. The benchmark's and the tests' ``wait_for_http`` share it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise failed(True)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise failed(False)


def wait_for_http(url: str, proc: Proc, timeout: float = 60) -> None:
    def failed(exited: bool) -> RuntimeError:
        why = f"{' '.join(proc.args[-2:])} exited early" if exited else f"{url} did not answer within {timeout:g} s"
        return RuntimeError(f"{why}:\n{proc.tail()}")

    wait_for_answer(url, lambda: proc.alive, timeout, failed)


@dataclass
class S3Server:
    """moto's S3 server: the stand-in for S3 or MinIO."""

    proc: Proc
    endpoint: str

    def env(self, prefix: str) -> dict[str, str]:
        return {
            "IMGPIPE_STORAGE_URL": "s3://",
            "IMGPIPE_S3_ENDPOINT_URL": self.endpoint,
            "IMGPIPE_S3_PUBLIC_ENDPOINT_URL": self.endpoint,
            "IMGPIPE_S3_ACCESS_KEY": "testing",
            "IMGPIPE_S3_SECRET_KEY": "testing",
            "IMGPIPE_S3_REGION": "us-east-1",
            "IMGPIPE_BUCKET_ORIGINAL": f"{prefix}-original",
            "IMGPIPE_BUCKET_PROCESSED": f"{prefix}-processed",
        }


# moto's own server (werkzeug's development server) closes the connection after every response, so each
# storage call of imgpipe would pay for a new TCP connection, which S3 and MinIO never make a client do.
# The same moto application is served here by uvicorn instead, with HTTP/1.1 keep-alive.
_MOTO = """
import sys, uvicorn
from uvicorn.middleware.wsgi import WSGIMiddleware
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
app = WSGIMiddleware(DomainDispatcherApplication(create_backend_app), workers=4)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            timeout_graceful_shutdown=1)
"""


def start_s3_server(log_dir: Path) -> S3Server:
    port = free_port()
    args = [sys.executable, "-W", "ignore", "-c", _MOTO, str(port)]
    proc = Proc(args, dict(os.environ), log_dir / "moto.log").start()
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not reachable(endpoint, port):
        if not proc.alive or time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"moto's S3 server did not start:\n{proc.tail()}")
        time.sleep(0.1)
    return S3Server(proc, endpoint)


@contextmanager
def throwaway_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"imgpipe_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def delete_queues(amqp_url: str, queue: str) -> None:
    """Delete a job queue and its dead-letter queue (the tests' ``drop_queues`` awaits this too)."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in (queue, f"{queue}.dead"):
            await channel.queue_delete(name)


def drop_queues(queue: str, amqp_url: str = AMQP_URL) -> None:
    """Delete a run's job queue and its dead-letter queue."""
    asyncio.run(delete_queues(amqp_url, queue))
