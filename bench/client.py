"""The load generator: upload images, wait for their jobs to finish, probe ``/health``, stream slow uploads."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx

from bench.http import Client, client, multipart

__all__ = ["HealthProbe", "JobTimes", "slow_uploads", "upload_all"]

_FINAL = ("DONE", "FAILED")


@dataclass(frozen=True)
class JobTimes:
    """A finished job's server-side timestamps, in seconds since the epoch."""

    job_id: str
    status: str
    created: float
    started: float
    finished: float

    @property
    def latency(self) -> float:
        return self.finished - self.created


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def _upload(web: Client, name: str, body: tuple[str, bytes]) -> str:
    response = await web.request("POST", "/api/v1/images", body[1], {"Content-Type": body[0]})
    if response.status != 202:
        raise RuntimeError(f"upload of {name} answered {response.status}: {response.body[:300]!r}")
    return str(json.loads(response.body)["id"])


async def _wait(web: Client, job_id: str, patience: float) -> JobTimes:
    deadline = time.monotonic() + patience
    while True:
        job = json.loads((await web.request("GET", f"/api/v1/images/{job_id}?wait=20&until=final")).body)
        if job["status"] in _FINAL:
            return JobTimes(
                job_id,
                job["status"],
                _ts(job["created_at"]),
                _ts(job["started_at"] or job["created_at"]),
                _ts(job["finished_at"]),
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['status']} after {patience:g} s")


async def _upload_all(
    url: str,
    files: list[tuple[str, bytes]],
    concurrency: int,
    sequential: bool,
    patience: float,
    on_uploaded: Callable[[], None] | None,
) -> tuple[list[JobTimes], float]:
    # Each distinct file is encoded once; copies share the bytes.
    encoded: dict[int, tuple[str, bytes]] = {}
    bodies = [encoded.setdefault(id(data), multipart("file", name, data)) for name, data in files]
    async with client(url, concurrency) as web:
        if sequential:  # one at a time on an idle stack: each waits for the previous one to finish
            done = []
            for (name, _), body in zip(files, bodies, strict=True):
                done.append(await _wait(web, await _upload(web, name, body), patience))
            return done, time.monotonic()
        ids = await asyncio.gather(*(_upload(web, name, body) for (name, _), body in zip(files, bodies, strict=True)))
        uploaded = time.monotonic()
        if on_uploaded is not None:
            on_uploaded()
        return [await _wait(web, job_id, patience) for job_id in ids], uploaded


def upload_all(
    url: str,
    files: list[tuple[str, bytes]],
    *,
    concurrency: int = 4,
    sequential: bool = False,
    timeout: float = 300,
    on_uploaded: Callable[[], None] | None = None,
) -> tuple[list[JobTimes], float]:
    """Upload every file, wait until every job is final; returns the jobs and when the last upload was accepted.

    ``on_uploaded`` is called once every upload has been accepted (the backlog is queued).
    """
    return asyncio.run(_upload_all(url, files, concurrency, sequential, timeout, on_uploaded))


class HealthProbe:
    """``GET /health`` every ``interval`` seconds on its own thread and connection, recording each latency."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-health", daemon=True)
        self.latencies: list[float] = []
        self.errors = 0

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        # The standard library's client: a probe every 20 ms must not load the cores it measures.
        conn = http.client.HTTPConnection(self._host, self._port, timeout=10)
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    conn.request("GET", "/health")
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    conn.close()
                    ok = False
                elapsed = time.perf_counter() - t0
                if ok:
                    self.latencies.append(elapsed)
                else:
                    self.errors += 1
                self._stop.wait(max(0.0, self._interval - elapsed))
        finally:
            conn.close()


async def _slow_upload(session: httpx.AsyncClient, url: str, data: bytes, seconds: float) -> tuple[int, str | None]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunk = 256 * 1024
    pause = seconds / max(1, len(data) // chunk)

    async def body() -> AsyncIterator[bytes]:
        yield head
        for at in range(0, len(data), chunk):
            yield data[at : at + chunk]
            await asyncio.sleep(pause)
        yield tail

    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + len(data) + len(tail)),
    }
    response = await session.post(f"{url}/api/v1/images", content=body(), headers=headers)
    job_id = response.json().get("id") if response.status_code == 202 else None
    return response.status_code, job_id


def slow_uploads(url: str, data: bytes, *, count: int, seconds: float) -> tuple[list[int], float]:
    """``count`` uploads of ``data`` at once, each paced to take about ``seconds``; then waits for their jobs.

    Returns the status code of each upload and when (time.monotonic) the last one was answered.
    """

    async def run() -> tuple[list[int], float]:
        async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=count + 2)) as session:
            answers = list(await asyncio.gather(*(_slow_upload(session, url, data, seconds) for _ in range(count))))
            answered = time.monotonic()
            async with client(url, 1) as web:
                for _, job_id in answers:
                    if job_id:
                        await _wait(web, job_id, 300)
            return [status for status, _ in answers], answered

    return asyncio.run(run())
