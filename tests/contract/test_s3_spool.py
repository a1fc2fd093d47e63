"""Where the S3 store keeps an upload until its PUT: in memory while it is small and the store's
memory budget lasts, else in a temporary file. Each way, the object arrives whole."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest

from imgpipe.adapters.storage.s3 import _SPOOL_IN_MEMORY, _SPOOL_MEMORY_TOTAL

MiB = 1024 * 1024
pytestmark = pytest.mark.parametrize("store", ["s3"], indirect=True)


@pytest.fixture
async def bucket(store: Any, bucket_prefix: str) -> str:
    name = f"{bucket_prefix}-spool"
    await store.ensure_bucket(name)
    return name


def _staged(store: Any, bucket: str, size: int) -> tuple[Any, bytes]:
    data = random.Random(size).randbytes(size)
    staged = store.stage(bucket)
    view = memoryview(data)
    for at in range(0, size, 65536):  # as the API hands it over: views of the received chunks
        staged.write(view[at : at + 65536])
    return staged, data


def _in_memory(staged: Any) -> bool:
    return isinstance(staged.reader(), io.BytesIO)


async def test_uploads_wait_in_memory_until_the_budget_is_spent_and_get_it_back_when_done(
    store: Any, bucket: str
) -> None:
    assert (_SPOOL_IN_MEMORY, _SPOOL_MEMORY_TOTAL) == (8 * MiB, 16 * MiB)  # the sizes below assume these
    a, a_data = _staged(store, bucket, 7 * MiB)
    b, _ = _staged(store, bucket, 7 * MiB)
    assert _in_memory(a) and _in_memory(b)
    c, c_data = _staged(store, bucket, 3 * MiB)  # 17 MiB in memory would pass the budget
    assert not _in_memory(c)

    await a.commit("a.bin", "application/octet-stream")
    await b.discard()  # both give their share back
    d, d_data = _staged(store, bucket, 7 * MiB)
    e, e_data = _staged(store, bucket, 7 * MiB)
    assert _in_memory(d) and _in_memory(e)

    for key, staged in (("c.bin", c), ("d.bin", d), ("e.bin", e)):
        await staged.commit(key, "application/octet-stream")
    assert await store.get(bucket, "a.bin") == a_data
    assert await store.get(bucket, "c.bin") == c_data  # spilled, then sent from its file
    assert await store.get(bucket, "d.bin") == d_data
    assert await store.get(bucket, "e.bin") == e_data
    assert await store.list(bucket) == ["a.bin", "c.bin", "d.bin", "e.bin"]


async def test_an_upload_that_outgrows_memory_moves_to_a_file_and_frees_its_share(store: Any, bucket: str) -> None:
    big, big_data = _staged(store, bucket, 9 * MiB)  # in memory up to 8 MiB, then spilled with the rest
    assert not _in_memory(big)
    # Were the big one still holding its 8 MiB, these two would not both fit in the 16 MiB budget.
    small = [_staged(store, bucket, 7 * MiB + 512 * 1024) for _ in range(2)]
    assert all(_in_memory(staged) for staged, _ in small)

    await big.commit("big.bin", "application/octet-stream")
    assert await store.get(bucket, "big.bin") == big_data
    for staged, _ in small:
        await staged.discard()
    assert await store.list(bucket) == ["big.bin"]
