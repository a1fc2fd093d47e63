"""Edges of the HTTP contract, in process (embedded backends, no worker): malformed requests get a 4xx
problem, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imgpipe.adapters.db.migrate import upgrade
from imgpipe.api.app import create_app
from imgpipe.config import Settings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path)
    await upgrade(settings.database.url)
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as test_client,
    ):
        yield test_client


async def test_a_boundary_longer_than_any_parser_accepts_is_a_400(client: httpx.AsyncClient) -> None:
    boundary = "b" * 5000
    response = await client.post(
        "/api/v1/images",
        content=f"--{boundary}\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_upload"


async def test_a_body_that_is_not_multipart_is_a_400_that_says_how(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/images", content=b"\xff\xd8\xff", headers={"content-type": "image/jpeg"})
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["detail"]


async def test_a_wrong_method_is_a_405_problem_with_an_allow_header(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/images")
    assert response.status_code == 405 and response.headers["content-type"] == "application/problem+json"
    assert "POST" in response.headers["allow"]


async def test_the_page_is_served_with_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200 and "<html" in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
