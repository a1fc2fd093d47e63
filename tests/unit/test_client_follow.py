"""``ApiClient.follow``: a caller that shows no states asks for the final one; one that shows them sees each."""

from __future__ import annotations

from uuid import uuid4

import httpx

from imgpipe.client.http import ApiClient


class FakeApi:
    """A job that moves PENDING -> PROCESSING -> DONE one long-poll at a time, honouring ``until=final``."""

    def __init__(self) -> None:
        self.states = ["PENDING", "PROCESSING", "DONE"]
        self.at = 0
        self.queries: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = request.url.query.decode()
        self.queries.append(query)
        if "wait=" in query:
            self.at = len(self.states) - 1 if "until=final" in query else self.at + 1
        return httpx.Response(200, json={"status": self.states[self.at]})


def test_following_without_showing_states_takes_one_long_poll_to_done() -> None:
    api = FakeApi()
    with ApiClient("http://imgpipe.test", transport=httpx.MockTransport(api)) as client:
        job = client.follow(uuid4())
    assert job["status"] == "DONE"
    assert api.queries == ["", "wait=30&until=final"]


def test_following_that_shows_states_sees_processing_on_the_way() -> None:
    api = FakeApi()
    seen: list[str] = []
    with ApiClient("http://imgpipe.test", transport=httpx.MockTransport(api)) as client:
        job = client.follow(uuid4(), lambda j: seen.append(j["status"]))
    assert job["status"] == "DONE"
    assert seen == ["PENDING", "PROCESSING", "DONE"]
    assert all("until" not in q for q in api.queries)
