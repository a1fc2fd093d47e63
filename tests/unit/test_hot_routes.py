"""Upload and status answered by ``HotRoutes`` match FastAPI's own routes, and skip its routing."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from PIL import Image
from starlette.routing import Router

from imgpipe.adapters.db.migrate import upgrade
from imgpipe.api.app import create_app
from imgpipe.config import Settings

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)")
_BLAKE3 = re.compile(r"blake3:[0-9a-f]{64}")


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def _multipart(field: str, data: bytes, filename: str = "a.jpg") -> dict[str, Any]:
    return {"files": {field: (filename, data, "application/octet-stream")}}


@asynccontextmanager
async def _client(tmp_path: Path, *, hot: bool) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path / ("hot" if hot else "framework"))
    await upgrade(settings.database.url)
    app = create_app(settings, hot_routes=hot)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


async def _exchange(client: httpx.AsyncClient) -> list[tuple[str, int, str, str | None, str | None, str]]:
    """The same requests, in order; each answer with ids, times and checksums masked."""
    jpeg = _jpeg()
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/v1/images", _multipart("file", jpeg)),
        ("POST", "/api/v1/images", {"content": b"\xff\xd8\xff", "headers": {"content-type": "image/jpeg"}}),
        ("POST", "/api/v1/images", _multipart("picture", jpeg)),
        ("POST", "/api/v1/images", _multipart("file", b"just some text, not an image")),
        ("POST", "/api/v1/images", _multipart("file", b"")),
    ]
    answers = []
    for method, url, kwargs in requests:
        answers.append(await client.request(method, url, **kwargs))
    job = answers[0].json()["id"]
    for url in (
        f"/api/v1/images/{job}",
        f"/api/v1/images/{job}?wait=0.05",
        "/api/v1/images/8d4ab1f0-5b42-4b8e-9d3e-7b1a2c3d4e5f",
        "/api/v1/images/not-a-job-id",
        f"/api/v1/images/{job}?wait=0.05&until=final",
        f"/api/v1/images/{job}?wait=abc",
        f"/api/v1/images/{job}?wait=61",
        f"/api/v1/images/{job}?wait=0.05&until=never",
    ):
        answers.append(await client.get(url))
    return [
        (
            _mask(str(r.request.url.path) + "?" + r.request.url.query.decode()) or "",
            r.status_code,
            r.headers["content-type"],
            _mask(r.headers.get("location")),
            r.headers.get("connection"),
            _mask(r.text) or "",
        )
        for r in answers
    ]


def _mask(text: str | None) -> str | None:
    if text is None:
        return None
    return _BLAKE3.sub("<blake3>", _TIME.sub("<time>", _ID.sub("<id>", text)))


async def test_upload_and_status_answer_as_fastapis_routes_do(tmp_path: Path) -> None:
    async with _client(tmp_path, hot=False) as framework:
        expected = await _exchange(framework)
    async with _client(tmp_path, hot=True) as hot:
        got = await _exchange(hot)
    assert [status for _, status, *_ in expected] == [202, 400, 400, 415, 400, 200, 200, 404, 404, 200, 422, 422, 422]
    for want, have in zip(expected, got, strict=True):
        assert have == want


async def test_the_hot_routes_skip_the_router_and_everything_else_reaches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed: list[str] = []
    original = Router.__call__

    async def counting(self: Router, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            routed.append(f"{scope['method']} {scope['path']}?{scope['query_string'].decode()}")
        await original(self, scope, receive, send)

    monkeypatch.setattr(Router, "__call__", counting)
    async with _client(tmp_path, hot=True) as client:
        job = (await client.post("/api/v1/images", **_multipart("file", _jpeg()))).json()["id"]
        assert (await client.get(f"/api/v1/images/{job}")).status_code == 200
        assert (await client.get(f"/api/v1/images/{job}?wait=0.01")).status_code == 200
        assert (await client.get(f"/api/v1/images/{job}?wait=0.01&until=final")).status_code == 200
        assert (await client.get("/api/v1/images/unknown")).status_code == 404
        assert routed == []
        assert (await client.get(f"/api/v1/images/{job}?wait=1e-2")).status_code == 200
        assert (await client.get(f"/api/v1/images/{job}?until=final&wait=0.01")).status_code == 200
        assert (await client.get(f"/api/v1/images/{job}/variants/original")).status_code == 200
        assert (await client.get("/api/v1/images")).status_code == 200
    assert routed == [
        f"GET /api/v1/images/{job}?wait=1e-2",
        f"GET /api/v1/images/{job}?until=final&wait=0.01",
        f"GET /api/v1/images/{job}/variants/original?",
        "GET /api/v1/images?",
    ]


async def test_one_upload_more_than_the_limit_is_refused_at_once_and_the_slot_comes_back(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_concurrent_uploads=1)
    await upgrade(settings.database.url)
    app = create_app(settings)
    release = asyncio.Event()
    boundary = "slowboundary"

    async def slow_body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        ).encode() + _jpeg()[:100]
        await release.wait()  # the client pauses mid-upload, holding its slot
        yield _jpeg()[100:] + f"\r\n--{boundary}--\r\n".encode()

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        slow = asyncio.create_task(client.post("/api/v1/images", content=slow_body(), headers=headers))
        await asyncio.sleep(0.2)
        refused = await client.post("/api/v1/images", **_multipart("file", _jpeg()))
        assert refused.status_code == 503 and refused.json()["code"] == "too_many_uploads"
        assert refused.headers["retry-after"] == "5" and refused.headers["connection"] == "close"
        release.set()
        assert (await slow).status_code == 202
        bad = await client.post("/api/v1/images", **_multipart("file", b"not an image"))
        assert bad.status_code == 415  # a refused upload gives its slot back too
        assert (await client.post("/api/v1/images", **_multipart("file", _jpeg()))).status_code == 202
    assert app.state.upload_slots.active == 0


@pytest.mark.parametrize("hot", [True, False], ids=["hot routes", "framework routes"])
@pytest.mark.parametrize("query", ["wait=5&until=final", "until=final&wait=5"])
async def test_until_final_is_not_answered_at_processing_only_at_done(tmp_path: Path, hot: bool, query: str) -> None:
    settings = Settings(data_dir=tmp_path / "until")
    await upgrade(settings.database.url)
    app = create_app(settings, hot_routes=hot)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        job_id = (await client.post("/api/v1/images", **_multipart("file", _jpeg()))).json()["id"]
        jobs = app.state.services.jobs  # no worker runs here: the test moves the job itself
        answer = asyncio.ensure_future(client.get(f"/api/v1/images/{job_id}?{query}"))
        await asyncio.sleep(0.1)
        claimed = await jobs.claim(UUID(job_id), lease=timedelta(minutes=1), takeover=False)
        assert claimed is not None
        await asyncio.sleep(0.3)
        assert not answer.done()  # PROCESSING went by unanswered
        assert await jobs.complete(UUID(job_id), claimed.attempts, [])
        done = await asyncio.wait_for(answer, 5)
    assert done.status_code == 200 and done.json()["status"] == "DONE"
