"""The two stacks the behavioural suite runs against: embedded (`imgpipe run`) and server (api + worker processes)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from support.processes import ImgpipeProcess, run_command, wait_for_http, wait_for_output
from support.services import S3Server, drop_queues, free_port, require_postgres, require_rabbit, throwaway_database

__all__ = ["TEST_SETTINGS", "AnyStack", "EmbeddedStack", "ServerStack", "make_stack"]

# Short clocks so recovery happens within a test's patience; the logic is the same.
TEST_SETTINGS = {
    "IMGPIPE_WORKER_CONCURRENCY": "2",
    "IMGPIPE_LEASE_SECONDS": "3",
    "IMGPIPE_RECONCILE_INTERVAL_SECONDS": "1",
    "IMGPIPE_REPUBLISH_AFTER_SECONDS": "1",
    "IMGPIPE_SHUTDOWN_GRACE_SECONDS": "10",
    "IMGPIPE_RETRY_BACKOFF_SECONDS": "0.1",
    "IMGPIPE_MAX_UPLOAD_BYTES": str(16 * 1024 * 1024),
    "IMGPIPE_JOB_TIMEOUT_SECONDS": "30",
}


@dataclass
class Stack:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    processes: list[ImgpipeProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {**TEST_SETTINGS, **self.env, "IMGPIPE_PORT": str(self.port), "IMGPIPE_HOST": "127.0.0.1"}

    def stop(self) -> None:
        for p in self.processes:
            p.stop()
            p.log.close()
        self.processes.clear()

    def crash(self) -> None:
        """SIGKILL every imgpipe process of the stack."""
        for p in self.processes:
            p.kill()
            p.log.close()
        self.processes.clear()

    def kill(self, process: ImgpipeProcess) -> None:
        """SIGKILL one process of the stack and forget it."""
        process.kill()
        process.log.close()
        self.processes.remove(process)

    def output(self) -> str:
        return "\n".join(f"--- imgpipe {p.command} (pid {p.pid}) ---\n{p.output()}" for p in self.processes)


@dataclass
class EmbeddedStack(Stack):
    data_dir: Path = Path()

    def start(self) -> EmbeddedStack:
        env = {**self._env(), "IMGPIPE_DATA_DIR": str(self.data_dir)}
        run = ImgpipeProcess("run", env).start()
        self.processes.append(run)
        wait_for_http(f"{self.url}/ready", run)
        return self

    def keys(self, which: str) -> list[str]:
        """Object keys in the ``original`` or ``processed`` bucket."""
        if self.env.get("IMGPIPE_STORAGE_URL") == "s3://":
            return _s3_keys(self.env, which)
        bucket = self.data_dir / "objects" / f"images-{which}"
        if not bucket.is_dir():
            return []
        return sorted(p.relative_to(bucket).as_posix() for p in bucket.rglob("*") if p.is_file())


@dataclass
class ServerStack(Stack):
    workers: int = 1
    # Per-process overrides, e.g. to route one worker's database link through a fault proxy.
    api_env: dict[str, str] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> ServerStack:
        migrated = run_command(["migrate"], self._env())
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        self.start_api()
        for _ in range(self.workers):
            self.start_worker()
        return self

    def start_api(self, wait: str = "ready") -> ImgpipeProcess:
        api = ImgpipeProcess("api", {**self._env(), **self.api_env}).start()
        self.processes.append(api)
        wait_for_http(f"{self.url}/{wait}", api)
        return api

    def start_worker(self, *, wait: bool = True, **env: str) -> ImgpipeProcess:
        worker = ImgpipeProcess("worker", {**self._env(), **self.worker_env, **env}).start()
        self.processes.append(worker)
        if wait:
            wait_for_output(worker, "worker consuming")
        return worker

    @property
    def api(self) -> ImgpipeProcess:
        return next(p for p in self.processes if p.command == "api")

    @property
    def worker_processes(self) -> list[ImgpipeProcess]:
        return [p for p in self.processes if p.command == "worker"]

    def keys(self, which: str) -> list[str]:
        """Object keys in the ``original`` or ``processed`` bucket."""
        return _s3_keys(self.env, which)


AnyStack = EmbeddedStack | ServerStack


@contextmanager
def make_stack(kind: str, request: pytest.FixtureRequest, data_dir: Path, **env: str) -> Iterator[AnyStack]:
    """Start an ``embedded`` or ``server`` stack with throwaway data; stop it and drop its data afterwards.
    On a failure inside, print what its processes logged."""
    with ExitStack() as cleanup:
        stack: AnyStack
        if kind == "embedded":
            stack = EmbeddedStack(env=dict(env), data_dir=data_dir)
        else:
            s3: S3Server = request.getfixturevalue("s3_server")
            db = cleanup.enter_context(throwaway_database(require_postgres()))
            queue = f"imgpipe.test.{uuid.uuid4().hex[:10]}"
            amqp = require_rabbit()
            cleanup.callback(drop_queues, amqp, queue)
            stack = ServerStack(
                env={
                    "IMGPIPE_DATABASE_URL": db,
                    "IMGPIPE_BROKER_URL": amqp,
                    "IMGPIPE_QUEUE_NAME": queue,
                    **s3.env(f"t{uuid.uuid4().hex[:12]}"),
                    **env,
                },
            )
        cleanup.callback(stack.stop)
        try:
            yield stack.start()
        except BaseException:
            print(stack.output())
            raise


def _s3_keys(env: dict[str, str], which: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=env["IMGPIPE_S3_ENDPOINT_URL"],
        aws_access_key_id=env["IMGPIPE_S3_ACCESS_KEY"],
        aws_secret_access_key=env["IMGPIPE_S3_SECRET_KEY"],
        region_name=env.get("IMGPIPE_S3_REGION", "us-east-1"),
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=env[f"IMGPIPE_BUCKET_{which.upper()}"])
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
