"""A small synchronous client of the imgpipe API: a method per route, every failure one readable line."""

from __future__ import annotations

import io
import json
import mimetypes
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import httpx

import imgpipe

__all__ = [
    "DEFAULT_API_URL",
    "FINAL_STATUSES",
    "ApiClient",
    "ApiProblem",
    "ClientError",
    "Job",
    "LocalError",
    "Unreachable",
]

DEFAULT_API_URL = "http://localhost:8000"
FINAL_STATUSES = frozenset({"DONE", "FAILED"})
LONG_POLL_SECONDS = 30  # the server's long-poll answers at once on a change, so this is no delay

Job = dict[str, Any]


class ClientError(Exception):
    """A failure the user reads as one line; ``exit_code`` is what the command then returns."""

    exit_code = 1


class LocalError(ClientError):
    """Something on this side is wrong: a missing file, an unwritable folder, a terminal for binary output."""

    exit_code = 2


class Unreachable(ClientError):
    """No HTTP answer at all: the server is down, the URL is wrong, or the connection broke."""

    exit_code = 2


class ApiProblem(ClientError):
    """The server answered with an error (an RFC 9457 problem, or something that is not imgpipe).

    ``status`` is None for a file that could not even be read, so never reached the server.
    """

    def __init__(self, status: int | None, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "detail": self.detail}


class _CountingFile(io.FileIO):
    """A file that reports each chunk httpx reads from it, so an upload streams and shows progress."""

    def __init__(self, path: Path, on_read: Callable[[int], None] | None) -> None:
        super().__init__(path, "rb")
        self._on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        if chunk and self._on_read is not None:
            self._on_read(len(chunk))
        return chunk


class ApiClient:
    """Talks to one imgpipe API; raises Unreachable or ApiProblem, never an httpx exception."""

    def __init__(self, api_url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.api_url,
            timeout=httpx.Timeout(30.0, connect=5.0),
            headers={"User-Agent": f"imgpipe-cli/{imgpipe.__version__}"},
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- routes -----------------------------------------------------------------------

    def upload(self, path: Path, on_progress: Callable[[int], None] | None = None) -> Job:
        """Stream one file as the multipart field ``file``; the server decides whether it is an image."""
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with self._talking(), _CountingFile(path, on_progress) as file:
            response = self._http.post(
                "/api/v1/images",
                files={"file": (path.name, file, content_type)},
                timeout=httpx.Timeout(60.0, connect=5.0),
            )
        return _json(response)

    def job(self, job_id: UUID, *, wait: float = 0, final: bool = False) -> Job:
        """The job; with ``wait``, once its status changes (``final``: once it is DONE or FAILED) or at the timeout."""
        params = {"wait": f"{wait:g}"} if wait else {}
        if wait and final:
            params["until"] = "final"
        with self._talking():
            response = self._http.get(
                f"/api/v1/images/{job_id}", params=params, timeout=httpx.Timeout(wait + 30.0, connect=5.0)
            )
        return _json(response)

    def follow(self, job_id: UUID, on_change: Callable[[Job], None] | None = None) -> Job:
        """Long-poll until the job is DONE or FAILED; ``on_change`` sees every status on the way.

        Without ``on_change`` nobody looks at PROCESSING: each long-poll asks for the final status only.
        """
        job = self.job(job_id)
        seen = job["status"]
        if on_change is not None:
            on_change(job)
        while job["status"] not in FINAL_STATUSES:
            job = self.job(job_id, wait=LONG_POLL_SECONDS, final=on_change is None)
            if on_change is not None and job["status"] != seen:
                seen = job["status"]
                on_change(job)
        return job

    def page(self, *, limit: int, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        with self._talking():
            response = self._http.get("/api/v1/images", params=params)
        return _json(response)

    def download(self, job_id: UUID, variant: str, sink: IO[bytes]) -> httpx.Headers:
        """Copy a variant's bytes into ``sink`` as they arrive; return the response headers."""
        path = f"/api/v1/images/{job_id}/variants/{variant}"
        with self._talking(), self._http.stream("GET", path) as response:
            if response.is_error:
                response.read()
                _json(response)
            for chunk in response.iter_bytes():
                sink.write(chunk)
            return response.headers

    # --- errors -------------------------------------------------------------------------

    @contextmanager
    def _talking(self) -> Iterator[None]:
        url = self.api_url
        try:
            yield
        except httpx.ConnectTimeout:
            raise Unreachable(f"cannot reach imgpipe at {url}: timed out") from None
        except httpx.ConnectError as exc:
            raise Unreachable(f"cannot reach imgpipe at {url}: {_reason(exc)}") from None
        except httpx.TimeoutException:
            raise Unreachable(f"imgpipe at {url} did not answer in time") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise Unreachable(f"invalid API URL {url!r}: give it as http://HOST:PORT") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"lost the connection to imgpipe at {url}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    # "[Errno 111] Connection refused" -> "connection refused"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _json(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a success; an ApiProblem carrying the server's ``detail`` otherwise."""
    kind = response.headers.get("content-type", "").split(";")[0].strip()
    body: Any = None
    if kind in ("application/json", "application/problem+json"):
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
    if response.is_success and isinstance(body, dict):
        return body
    raise _problem(response, body, kind)


def _problem(response: httpx.Response, body: Any, kind: str) -> ApiProblem:
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return ApiProblem(response.status_code, str(body.get("code") or "error"), body["detail"])
    what = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    detail = f"unexpected answer from {response.url}: {what} ({kind or 'no body'})"
    return ApiProblem(response.status_code, "unexpected_response", detail)
