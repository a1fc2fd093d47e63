"""The stacks under test: ``embedded`` (one `imgpipe run`) and ``server`` (`imgpipe api` + `imgpipe worker`
on PostgreSQL, RabbitMQ and the S3 server), each as real OS processes configured by environment only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from support.services import (
    S3Server,
    drop_queues,
    require_postgres,
    require_rabbit,
    throwaway_database,
)
from support.stacks import AnyStack, EmbeddedStack, ServerStack


@contextmanager
def make_stack(kind: str, request: pytest.FixtureRequest, data_dir: Path, **env: str) -> Iterator[AnyStack]:
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
                s3=s3,
            )
        cleanup.callback(stack.stop)
        try:
            yield stack.start()
        except BaseException:
            print(stack.output())
            raise


@pytest.fixture(scope="module", params=["embedded", "server"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnyStack]:
    """One stack per module and kind, shared by the module's tests (they use their own jobs)."""
    with make_stack(request.param, request, tmp_path_factory.mktemp("data")) as s:
        yield s


@pytest.fixture(params=["embedded", "server"])
def fresh_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStack]:
    """A stack of the test's own, for tests that crash or restart it."""
    with make_stack(request.param, request, tmp_path / "data") as s:
        yield s


@pytest.fixture
def server_stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerStack]:
    """A server stack of the test's own: API and workers as separate processes."""
    with make_stack("server", request, tmp_path / "data") as s:
        assert isinstance(s, ServerStack)
        yield s


@pytest.fixture(scope="module")
def module_server_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerStack]:
    """One server stack for a whole module."""
    with make_stack("server", request, tmp_path_factory.mktemp("data")) as s:
        assert isinstance(s, ServerStack)
        yield s
