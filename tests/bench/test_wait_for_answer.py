"""``wait_for_answer``: the polling the harness and the tests start their servers with."""

from __future__ import annotations

import http.server
import threading

import pytest
from bench.procs import free_port, wait_for_answer


class _Failed(Exception):
    pass


def _failed(exited: bool) -> _Failed:
    return _Failed("exited" if exited else "timeout")


def test_a_server_answering_200_ends_the_wait() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_for_answer(f"http://127.0.0.1:{server.server_port}/", lambda: True, 10, _failed)
    finally:
        server.shutdown()
        server.server_close()


def test_a_process_that_ended_fails_at_once_and_says_so() -> None:
    with pytest.raises(_Failed, match="exited"):
        wait_for_answer(f"http://127.0.0.1:{free_port()}/", lambda: False, 30, _failed)


def test_nothing_answering_fails_when_time_runs_out() -> None:
    with pytest.raises(_Failed, match="timeout"):
        wait_for_answer(f"http://127.0.0.1:{free_port()}/", lambda: True, 0.3, _failed)
