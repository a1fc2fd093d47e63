"""Fixtures shared by every suite: the real servers, throwaway databases, queues and buckets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support.processes import attach_output_on_failure
from support.services import (
    S3Server,
    drop_queues,
    require_postgres,
    require_rabbit,
    run_sync,
    start_s3_server,
    throwaway_database,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]  # for fixtures that record outcomes
    attach_output_on_failure(item, report)
    return report


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = start_s3_server()
    yield server
    server.process.terminate()
    server.process.wait(10)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated database to copy: CREATE DATABASE ... TEMPLATE is much faster than migrating each time."""
    from imgpipe.adapters.db.migrate import upgrade
    from imgpipe.config import Settings

    admin = require_postgres()
    with throwaway_database(admin) as url:
        run_sync(upgrade(Settings(database_url=url).database.url))
        yield url.rsplit("/", 1)[-1]


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    with throwaway_database(require_postgres(), template=pg_template) as url:
        yield url


@pytest.fixture
def pg_empty_url() -> Iterator[str]:
    with throwaway_database(require_postgres()) as url:
        yield url


@pytest.fixture
def amqp_url() -> str:
    return require_rabbit()


@pytest.fixture
def queue_name(amqp_url: str) -> Iterator[str]:
    """A quorum queue (and its dead-letter queue) of the test's own, deleted afterwards."""
    name = f"imgpipe.test.{uuid.uuid4().hex[:10]}"
    yield name
    drop_queues(amqp_url, name)


@pytest.fixture
def bucket_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"
