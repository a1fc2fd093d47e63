"""The real servers: PostgreSQL and RabbitMQ given by the machine, an S3 server (moto) started here.

A service that cannot be reached skips the test on a laptop, and fails it when
``CI=true``: CI must never go green by skipping the integration suite.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from bench.procs import delete_queues

T = TypeVar("T")

__all__ = [
    "S3Server",
    "drop_queues",
    "run_sync",
    "pg_admin_url",
    "rabbit_url",
    "reachable",
    "start_s3_server",
    "throwaway_database",
    "unavailable",
]


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(what: str) -> None:
    message = f"{what} is not reachable"
    if in_ci():
        pytest.fail(f"{message} (CI=true: integration tests must run, not skip)")
    pytest.skip(message)


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_admin_url() -> str:
    return os.environ.get("IMGPIPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def rabbit_url() -> str:
    return os.environ.get("IMGPIPE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def require_postgres() -> str:
    url = pg_admin_url()
    if not reachable(*_host_port(url, 5432)):
        unavailable(f"PostgreSQL at {url}")
    return url


def require_rabbit() -> str:
    url = rabbit_url()
    if not reachable(*_host_port(url, 5672)):
        unavailable(f"RabbitMQ at {url}")
    return url


@contextmanager
def throwaway_database(admin_url: str, template: str | None = None) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards (even if the test failed)."""
    import psycopg

    name = f"imgpipe_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    parts = urlsplit(admin_url)
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    access_key: str = "testing"
    secret_key: str = "testing"

    @property
    def public_endpoint(self) -> str:
        return self.endpoint.replace("127.0.0.1", "localhost")

    def env(self, prefix: str) -> dict[str, str]:
        """The IMGPIPE_* variables that point imgpipe at this server, with buckets of its own."""
        return {
            "IMGPIPE_STORAGE_URL": "s3://",
            "IMGPIPE_S3_ENDPOINT_URL": self.endpoint,
            # Another name for the same server: presigned URLs must be signed for this one.
            "IMGPIPE_S3_PUBLIC_ENDPOINT_URL": self.public_endpoint,
            "IMGPIPE_S3_ACCESS_KEY": self.access_key,
            "IMGPIPE_S3_SECRET_KEY": self.secret_key,
            "IMGPIPE_S3_REGION": "us-east-1",
            "IMGPIPE_BUCKET_ORIGINAL": f"{prefix}-original",
            "IMGPIPE_BUCKET_PROCESSED": f"{prefix}-processed",
        }


def start_s3_server() -> S3Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not reachable("127.0.0.1", port, 0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            unavailable("the moto S3 server (python -m moto.server)")
        time.sleep(0.1)
    return S3Server(endpoint=f"http://127.0.0.1:{port}", process=process)


def drop_queues(amqp_url: str, queue: str) -> None:
    """Delete a test's job queue and its dead-letter queue."""
    run_sync(delete_queues(amqp_url, queue))
