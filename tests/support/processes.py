"""imgpipe as separate OS processes, configured only by environment variables, as containers would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO

import psutil
import pytest
from bench.procs import Running, imgpipe_env, wait_for_answer

__all__ = ["ImgpipeProcess", "attach_output_on_failure", "run_command", "wait_for_http", "wait_for_output"]

_IMGPIPE = [sys.executable, "-m", "imgpipe.cli"]


def run_command(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_IMGPIPE, *args], env=imgpipe_env(env), capture_output=True, text=True, timeout=timeout)


@dataclass
class ImgpipeProcess(Running):
    """One ``imgpipe <command>`` process; its output goes to a file the test can print on failure."""

    command: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    # Appended to by the child; read through a separate handle so the shared offset never moves.
    log: IO[bytes] = field(default_factory=lambda: tempfile.NamedTemporaryFile("ab"))

    def start(self) -> ImgpipeProcess:
        self.process = subprocess.Popen(
            [*_IMGPIPE, self.command], env=imgpipe_env(self.env), stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def output(self) -> str:
        try:
            with open(self.log.name, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:  # closed (and so deleted) already
            return ""

    def kernel_pids(self) -> list[int]:
        """The kernel child processes of this process."""
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [c.pid for c in children if "imgpipe.worker.kernel_child" in " ".join(c.cmdline())]

    def freeze_kernels(self) -> list[int]:
        """SIGSTOP every kernel child: the next jobs hang mid-processing, deterministically."""
        pids = self.kernel_pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def thaw_kernels(self) -> None:
        for pid in self.kernel_pids():
            os.kill(pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no goodbye, as a crash or the OOM killer would."""
        if self.alive:
            assert self.process is not None
            kernels = self.kernel_pids()
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            # The kernel children exit by themselves when their pipe closes; make sure.
            for pid in kernels:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then SIGKILL if it does not stop in time. Returns the exit status."""
        if self.process is None:
            return None
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


def wait_for_http(url: str, process: ImgpipeProcess, timeout: float = 30) -> None:
    def failed(exited: bool) -> AssertionError:
        why = f"imgpipe {process.command} exited early" if exited else f"{url} did not answer within {timeout} s"
        return AssertionError(f"{why}:\n{process.output()}")

    wait_for_answer(url, lambda: process.alive, timeout, failed)


def wait_for_output(process: ImgpipeProcess, text: str, timeout: float = 30) -> None:
    """Wait until the process has logged ``text`` (a worker logs "worker consuming" once it takes jobs)."""
    deadline = time.monotonic() + timeout
    while text not in process.output():
        if not process.alive:
            raise AssertionError(f"imgpipe {process.command} exited early:\n{process.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"imgpipe {process.command} did not log {text!r} in {timeout} s:\n{process.output()}")
        time.sleep(0.05)


def attach_output_on_failure(item: pytest.Item, report: pytest.TestReport) -> None:
    """Add what the imgpipe processes of a failed test logged to its report, where pytest prints it."""
    if not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        stack = getattr(value, "stack", value)  # a stack, or something that holds one
        output = getattr(stack, "output", None)
        if callable(output):
            report.sections.append((f"imgpipe output ({name})", str(output())[-20_000:]))
