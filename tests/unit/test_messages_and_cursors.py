"""The job message on the wire and the list cursor in URLs round-trip, and refuse garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from imgpipe.api.schemas import decode_cursor, encode_cursor
from imgpipe.domain.message import MalformedMessage, decode, encode


def test_a_job_message_round_trips() -> None:
    job_id = uuid4()
    assert decode(encode(job_id)) == job_id


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'{"v":2,"job_id":"x"}', b'{"v":1}', b'{"v":1,"job_id":"nope"}', b"\xff\xfe"]
)
def test_a_malformed_message_is_recognised(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(body)


def test_a_cursor_round_trips() -> None:
    position = (datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC), uuid4())
    assert decode_cursor(encode_cursor(position)) == position


@pytest.mark.parametrize("cursor", ["", "!!!", "Zm9v", "MjAyNi0xMS0yN1QxMjowMDowMHxub3Bl"])
def test_a_forged_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError):
        decode_cursor(cursor)
