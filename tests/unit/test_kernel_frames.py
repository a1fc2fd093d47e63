"""The kernel pipe's frames: each side writes a frame in as few system calls as it can, and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from imgpipe.imaging.types import VariantSpec
from imgpipe.worker import kernel_child
from imgpipe.worker.frames import PREFIX, pack, unpack_prefix
from imgpipe.worker.kernel_pool import ProcessKernel


def _read_frame(fd: int) -> tuple[dict[str, Any], bytes]:
    head_len, payload_len = unpack_prefix(kernel_child._read_exact(fd, PREFIX.size) or b"")
    head = kernel_child._read_exact(fd, head_len)
    payload = kernel_child._read_exact(fd, payload_len)
    assert head is not None and payload is not None
    return json.loads(head), payload


def test_a_frame_is_the_prefix_with_its_header_then_the_payload() -> None:
    parts = pack({"ok": True, "width": 3}, b"pixels")
    assert len(parts) == 2
    head_len, payload_len = unpack_prefix(parts[0][: PREFIX.size])
    assert json.loads(parts[0][PREFIX.size :]) == {"ok": True, "width": 3}
    assert head_len == len(parts[0]) - PREFIX.size
    assert (payload_len, parts[1]) == (6, b"pixels")


def test_a_reply_goes_out_in_one_system_call_when_the_pipe_has_room(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.writev

    def counting(fd: int, buffers: Any) -> int:
        calls.append(fd)
        return real(fd, buffers)

    monkeypatch.setattr(kernel_child.os, "writev", counting)
    read_end, write_end = os.pipe()
    try:
        kernel_child._write_all(write_end, pack({"ok": True}, b"x" * 1000))
        assert calls == [write_end]
        assert _read_frame(read_end) == ({"ok": True}, b"x" * 1000)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_reply_bigger_than_the_pipe_arrives_whole() -> None:
    # A pipe holds 64 KiB: the writes come back short and the rest must follow, byte for byte.
    payload = os.urandom(3 * 1024 * 1024 + 17)
    read_end, write_end = os.pipe()
    received: list[tuple[dict[str, Any], bytes]] = []
    reader = threading.Thread(target=lambda: received.append(_read_frame(read_end)))
    reader.start()
    try:
        kernel_child._write_all(write_end, pack({"ok": True, "n": 1}, payload))
    finally:
        reader.join(timeout=30)
        os.close(read_end)
        os.close(write_end)
    assert received == [({"ok": True, "n": 1}, payload)]


class _RecordingWriter:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    async def drain(self) -> None:
        return None


class _Child:
    def __init__(self, reply: list[bytes]) -> None:
        self.stdin = _RecordingWriter()
        self.stdout = asyncio.StreamReader()
        for part in reply:
            self.stdout.feed_data(part)


class _Holder:
    def __init__(self, reply: list[bytes]) -> None:
        self.proc = _Child(reply)


async def test_a_request_naming_the_original_s_file_is_one_write_to_the_kernel(tmp_path: Path) -> None:
    # One write is one wake-up of the kernel process; two cost it a second read and sleep per image.
    holder = _Holder(pack({"ok": True, "content_type": "image/jpeg", "width": 2, "height": 1}, b"jpeg"))
    reply, payload = await ProcessKernel._exchange(holder, tmp_path / "original.jpg", VariantSpec())  # type: ignore[arg-type]
    assert (reply["width"], payload) == (2, b"jpeg")
    assert len(holder.proc.stdin.writes) == 1
    head_len, payload_len = unpack_prefix(holder.proc.stdin.writes[0][: PREFIX.size])
    request = json.loads(holder.proc.stdin.writes[0][PREFIX.size :])
    assert (head_len, payload_len) == (len(holder.proc.stdin.writes[0]) - PREFIX.size, 0)
    assert request["path"] == str(tmp_path / "original.jpg")


async def test_an_original_sent_as_bytes_follows_its_header() -> None:
    holder = _Holder(pack({"ok": True, "content_type": "image/jpeg", "width": 2, "height": 1}, b"jpeg"))
    original = os.urandom(2_500_000)
    await ProcessKernel._exchange(holder, original, VariantSpec())  # type: ignore[arg-type]
    sent = b"".join(holder.proc.stdin.writes)
    head_len, payload_len = unpack_prefix(sent[: PREFIX.size])
    assert "path" not in json.loads(sent[PREFIX.size : PREFIX.size + head_len])
    assert (payload_len, sent[PREFIX.size + head_len :]) == (len(original), original)
    # In slices: the whole original is never a second copy in the transport's buffer.
    assert max(len(w) for w in holder.proc.stdin.writes[1:]) <= 1 << 20
