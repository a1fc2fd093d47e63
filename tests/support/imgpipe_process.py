"""The real ``imgpipe run`` as a separate OS process, with its own data folder and port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.services import free_port

__all__ = ["ImgpipeProcess", "attach_output_on_failure", "running_imgpipe"]

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0


@dataclass
class ImgpipeProcess:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def running_imgpipe(data_dir: Path, *, concurrency: int = 2) -> Iterator[ImgpipeProcess]:
    """Start ``python -m imgpipe.cli run`` on a free port; stop it with SIGTERM (SIGKILL after 15 s)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGPIPE_")}
    env |= {
        "IMGPIPE_DATA_DIR": str(data_dir),
        "IMGPIPE_HOST": "127.0.0.1",
        "IMGPIPE_PORT": str(port),
        "IMGPIPE_WORKER_CONCURRENCY": str(concurrency),
        "IMGPIPE_LOG_FORMAT": "console",
        "PYTHONUNBUFFERED": "1",
    }
    log = data_dir.parent / f"{data_dir.name}-imgpipe.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "imgpipe.cli", "run"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    server = ImgpipeProcess(url=f"http://127.0.0.1:{port}", data_dir=data_dir, log=log, process=process)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        _stop(process)


def _wait_until_healthy(server: ImgpipeProcess) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"imgpipe run exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"imgpipe run did not answer /health within {_START_TIMEOUT:g} s:\n{server.output()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def attach_output_on_failure(report: pytest.TestReport, server: ImgpipeProcess | None) -> None:
    """Add the server's output to a failed test's report, where pytest prints it."""
    if server is not None and report.failed:
        report.sections.append(("imgpipe run output", server.output()[-20_000:]))
