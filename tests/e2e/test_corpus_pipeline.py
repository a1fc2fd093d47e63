"""Every row of the corpus manifest through the running server stack (API and worker processes,
PostgreSQL, RabbitMQ, S3): each ends as the manifest says, and nothing crashes, hangs or answers 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from imgpipe.imaging.types import Rendered
from support.corpus import Row, assert_clean_thumbnail, assert_upright_and_faithful, rows
from support.stacks import ServerStack

pytestmark = pytest.mark.e2e


@dataclass
class Outcome:
    status_code: int  # of the upload
    problem: dict[str, Any] | None = None  # when refused at the door
    job: dict[str, Any] | None = None  # when accepted, as it ended
    thumbnail: bytes | None = None


@pytest.fixture(scope="module")
def outcomes(module_server_stack: ServerStack) -> Iterator[dict[str, Outcome]]:
    stack = module_server_stack
    found: dict[str, Outcome] = {}
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for row in rows():
            response = client.post("/api/v1/images", files={"file": (Path(row.path).name, row.read())})
            if response.status_code == 202:
                found[row.path] = Outcome(202, job=response.json())
            else:
                found[row.path] = Outcome(response.status_code, problem=response.json())
        deadline = time.monotonic() + 180
        for outcome in found.values():
            while outcome.job is not None and outcome.job["status"] not in ("DONE", "FAILED"):
                assert time.monotonic() < deadline, f"job stuck: {outcome.job}\n{stack.output()}"
                outcome.job = client.get(f"/api/v1/images/{outcome.job['id']}", params={"wait": 10}).json()
            if outcome.job is not None and outcome.job["status"] == "DONE":
                outcome.thumbnail = client.get(outcome.job["variants"][1]["url"]).content
        assert stack.api.alive and all(w.alive for w in stack.worker_processes), stack.output()
    yield found


def _rendered(outcome: Outcome) -> Rendered:
    assert outcome.job is not None and outcome.thumbnail is not None
    meta = outcome.job["variants"][1]
    return Rendered(outcome.thumbnail, meta["content_type"], meta["width"], meta["height"])


def _refused_or_failed_with(outcome: Outcome, codes: set[str], statuses: set[int]) -> bool:
    if outcome.problem is not None:
        return outcome.status_code in statuses and outcome.problem["code"] in codes
    assert outcome.job is not None
    return outcome.job["status"] == "FAILED" and outcome.job["error"]["code"] in codes


@pytest.mark.parametrize("row", rows(), ids=lambda r: r.path)
def test_every_corpus_file_ends_as_the_manifest_expects_through_the_pipeline(
    outcomes: dict[str, Outcome], row: Row
) -> None:
    outcome = outcomes[row.path]
    assert outcome.status_code < 500
    if row.expected == "reject-empty":
        assert outcome.status_code == 400 and outcome.problem and outcome.problem["code"] == "empty_upload"
    elif row.expected == "reject-bomb":
        assert _refused_or_failed_with(outcome, {"image_too_large"}, {422}), outcome
    elif row.expected == "reject-corrupt":
        codes = {"corrupt_image"} if row.accepted else {"corrupt_image", "unsupported_format"}
        assert _refused_or_failed_with(outcome, codes, {415, 422}), outcome
        if outcome.job is not None:
            assert outcome.job["attempts"] == 1  # corrupt data is not retried
    elif row.expected == "ok-or-reject-corrupt":
        if outcome.job is not None and outcome.job["status"] == "DONE":
            assert_clean_thumbnail(_rendered(outcome))
        else:
            assert _refused_or_failed_with(outcome, {"corrupt_image"}, {422}), outcome
    else:
        assert outcome.job is not None and outcome.job["status"] == "DONE", outcome
        assert_upright_and_faithful(row, _rendered(outcome))
