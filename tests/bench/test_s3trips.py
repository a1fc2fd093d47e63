"""The S3 stand-in's round trips on a job's path are timed through imgpipe's S3 client, and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from bench.procs import S3Server, start_s3_server
from bench.s3trips import CALLS, _settings, time_s3_trips
from bench.sections import _s3_trips

from imgpipe.adapters.storage.s3 import S3Store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.proc.stop()


async def _keys(s3: S3Server, bucket: str) -> list[str]:
    async with S3Store(_settings(s3)) as store:
        return await store.list(bucket)


def test_each_call_is_timed_once_per_round_after_a_warm_up_and_the_objects_are_deleted(s3: S3Server) -> None:
    pairs = [(os.urandom(700_000), os.urandom(20_000)), (os.urandom(300_000), os.urandom(9_000))]
    trips = time_s3_trips(s3, pairs, 4)
    calls = trips["calls_ms"]
    assert list(calls) == list(CALLS)
    assert all(c["n"] == 4 and c["p50"] > 0 for c in calls.values())
    assert trips["sum_p50"] == pytest.approx(sum(c["p50"] for c in calls.values()))
    assert asyncio.run(_keys(s3, trips["bucket"])) == []


def test_the_settings_are_the_ones_the_server_stack_is_given(s3: S3Server) -> None:
    cfg = _settings(s3)
    env = s3.env("any")
    assert cfg.endpoint_url == env["IMGPIPE_S3_ENDPOINT_URL"] == s3.endpoint
    assert (cfg.access_key, cfg.secret_key, cfg.region) == (
        env["IMGPIPE_S3_ACCESS_KEY"],
        env["IMGPIPE_S3_SECRET_KEY"],
        env["IMGPIPE_S3_REGION"],
    )


def test_the_report_quotes_each_call_and_their_share_of_the_idle_p50() -> None:
    calls = {c: {"p50": p50, "n": 30} for c, p50 in zip(CALLS, (9.0, 6.0, 3.5), strict=True)}
    idle = [
        {"stack": "embedded", "idle": {"latency_ms": {"p50": 25.0}}},
        {"stack": "server", "idle": {"latency_ms": {"p50": 49.0}, "s3_trips": {"calls_ms": calls, "sum_p50": 18.5}}},
    ]
    (line,) = [x for x in _s3_trips(idle) if x]
    assert line.startswith("- server:")
    assert "(p50 of 30, ms): put original 9.0, get original 6.0, put thumbnail 3.5; together 18.5 of the 49.0" in line
    assert _s3_trips(idle[:1]) == []
