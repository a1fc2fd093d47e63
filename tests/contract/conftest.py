"""Each port's implementations, as one parametrised fixture per port: a contract test runs against all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imgpipe.adapters.db.engine import open_database
from imgpipe.adapters.db.migrate import upgrade
from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.adapters.queue.amqp import AmqpQueue
from imgpipe.adapters.queue.memory import MemoryQueue
from imgpipe.adapters.storage.local import LocalStore
from imgpipe.adapters.storage.s3 import S3Store
from imgpipe.config import Settings


@pytest.fixture(params=["sqlite", "postgres"])
async def repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlJobRepository]:
    if request.param == "sqlite":
        url = Settings(database_url=f"sqlite:///{tmp_path}/jobs.db").database.url
        await upgrade(url)
    else:
        url = Settings(database_url=request.getfixturevalue("pg_url")).database.url
    database = open_database(url)
    repository = SqlJobRepository(database)
    yield repository
    await repository.close()
    await database.dispose()


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "local":
        async with LocalStore(tmp_path / "objects") as local:
            yield local
        return
    server = request.getfixturevalue("s3_server")
    env = server.env(request.getfixturevalue("bucket_prefix"))
    settings = Settings(**{k.removeprefix("IMGPIPE_").lower(): v for k, v in env.items()})
    async with S3Store(settings.storage) as s3:  # type: ignore[arg-type]
        yield s3


@pytest.fixture(params=["memory", "amqp"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        async with MemoryQueue(delivery_limit=3) as memory:
            yield memory
        return
    settings = Settings(
        broker_url=request.getfixturevalue("amqp_url"),
        queue_name=request.getfixturevalue("queue_name"),
        delivery_limit=3,
    )
    async with AmqpQueue(settings.broker) as amqp:  # type: ignore[arg-type]
        yield amqp
