"""Fixtures for the CLI tests: the real ``imgpipe run`` and a way to run the real ``imgpipe`` command against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.stacks import EmbeddedStack

Imgpipe = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def imgpipe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    server = EmbeddedStack(env={}, data_dir=tmp_path_factory.mktemp("cli") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def imgpipe(imgpipe_server: EmbeddedStack, tmp_path: Path) -> Imgpipe:
    """Run ``python -m imgpipe.cli ARGS...`` (the ``imgpipe`` script) with IMGPIPE_API_URL set to the server."""

    def run(*args: str | Path, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPIPE_")}
        env["IMGPIPE_API_URL"] = imgpipe_server.url
        return subprocess.run(
            [sys.executable, "-m", "imgpipe.cli", *map(str, args)],
            env=env,
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
