"""The stacks under test: ``embedded`` (one `imgpipe run`) and ``server`` (`imgpipe api` + `imgpipe worker`
on PostgreSQL, RabbitMQ and the S3 server), each as real OS processes configured by environment only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.stacks import AnyStack, ServerStack, make_stack


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
