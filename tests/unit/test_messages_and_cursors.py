"""The job message on the wire and the list cursor in URLs round-trip, and refuse garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from imgpipe.api.schemas import decode_cursor, encode_cursor
from imgpipe.domain.message import JobMessage, MalformedMessage, decode, encode


def test_a_job_message_round_trips() -> None:
    job_id = uuid4()
    assert decode(encode(job_id)) == JobMessage(job_id, None)
    assert decode(encode(job_id, ("images-original", f"{job_id}.jpg"))) == JobMessage(
        job_id, ("images-original", f"{job_id}.jpg")
    )


def test_a_message_without_the_hint_is_read_as_before() -> None:
    job_id = uuid4()
    assert decode(b'{"v":1,"job_id":"%s"}' % str(job_id).encode()) == JobMessage(job_id, None)


@pytest.mark.parametrize(
    "hint", ['"x"', "[]", "{}", '{"bucket":"b"}', '{"bucket":"","key":"k"}', '{"bucket":1,"key":"k"}', "null"]
)
def test_a_bad_hint_is_dropped_and_the_job_kept(hint: str) -> None:
    job_id = uuid4()
    body = f'{{"v":1,"job_id":"{job_id}","original":{hint}}}'.encode()
    assert decode(body) == JobMessage(job_id, None)


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
