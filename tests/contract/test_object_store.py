"""The ObjectStore contract, run against the local folder and the S3 server alike."""

from __future__ import annotations

import io
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from PIL import Image

from imgpipe.domain.errors import ObjectNotFound
from imgpipe.imaging.probe import probe
from imgpipe.imaging.types import ImageFormat, ImageInfo, Limits


@pytest.fixture
async def bucket(store: Any, bucket_prefix: str) -> str:
    name = f"{bucket_prefix}-contract"  # a bucket of the test's own on the shared S3 server
    await store.ensure_bucket(name)
    return name


async def test_a_put_object_reads_back_byte_for_byte(store: Any, bucket: str) -> None:
    data = bytes(range(256)) * 1000
    await store.put(bucket, "a/b.bin", data, "application/octet-stream")
    assert await store.get(bucket, "a/b.bin") == data


@pytest.mark.parametrize("mib", [3, 9], ids=["spooled", "streamed"])  # S3: sent from memory, or from its file
async def test_a_staged_object_is_invisible_until_committed_whole(store: Any, bucket: str, mib: int) -> None:
    data = b"\xff\xd8" + b"x" * (mib * 1024 * 1024)  # S3: 9 MiB is past what an upload keeps in memory
    staged = store.stage(bucket)
    for at in range(0, len(data), 65536):
        staged.write(data[at : at + 65536])
    reader = staged.reader()
    assert reader.read(2) == b"\xff\xd8"  # readable from the start, for probing
    reader.seek(12345)  # wherever the reader left it, the commit stores all of it
    assert await store.list(bucket) == []
    await staged.commit("big.jpg", "image/jpeg")
    await staged.discard()  # after a commit: nothing happens
    assert await store.get(bucket, "big.jpg") == data
    assert await store.list(bucket) == ["big.jpg"]


@pytest.mark.parametrize("side", [256, 1800], ids=["in-memory", "spilled"])  # 0.2 and 9.3 MiB
async def test_a_staged_upload_is_probed_from_its_reader_and_a_big_one_from_a_file(
    store: Any, bucket: str, side: int
) -> None:
    png = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(
        png, "PNG", compress_level=0
    )
    staged = store.stage(bucket)
    data = png.getvalue()
    for at in range(0, len(data), 65536):
        staged.write(data[at : at + 65536])
    reader = staged.reader()
    assert probe(reader, Limits()) == ImageInfo(ImageFormat.PNG, side, side)
    if len(data) > 8 * 1024 * 1024:  # past what an S3 upload keeps in memory: a plain file, which the probe maps
        assert isinstance(reader, (io.BufferedRandom, io.BufferedReader))
    await staged.commit("probed.png", "image/png")
    assert await store.get(bucket, "probed.png") == data


async def test_a_local_path_if_offered_is_the_object_as_a_file(store: Any, bucket: str) -> None:
    await store.put(bucket, "f/g.jpg", b"\xff\xd8file", "image/jpeg")
    path = store.local_path(bucket, "f/g.jpg")
    if path is None:
        assert type(store).__name__ == "S3Store"  # remote objects are read with get()
        return
    assert path.read_bytes() == b"\xff\xd8file"
    with pytest.raises(ValueError):
        store.local_path(bucket, "../escape")


async def test_a_discarded_staged_object_leaves_nothing_and_the_old_object_stands(store: Any, bucket: str) -> None:
    await store.put(bucket, "kept", b"old", "text/plain")
    staged = store.stage(bucket)
    staged.write(b"y" * 100_000)
    await staged.discard()
    await staged.discard()  # idempotent
    assert await store.get(bucket, "kept") == b"old"
    assert await store.list(bucket) == ["kept"]  # no temporary file either


async def test_get_of_a_missing_key_raises_object_not_found(store: Any, bucket: str) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get(bucket, "nope.jpg")


async def test_open_of_a_missing_key_raises_object_not_found_before_streaming(store: Any, bucket: str) -> None:
    with pytest.raises(ObjectNotFound):
        await store.open(bucket, "nope.jpg")


async def test_open_streams_the_object_in_chunks_with_its_size(store: Any, bucket: str) -> None:
    data = b"0123456789" * 100_000
    await store.put(bucket, "s.bin", data, "application/octet-stream")
    stream = await store.open(bucket, "s.bin")
    got = b"".join([chunk async for chunk in stream.chunks])
    assert stream.size == len(data)
    assert got == data


async def test_a_second_put_overwrites_the_first(store: Any, bucket: str) -> None:
    await store.put(bucket, "k", b"first", "text/plain")
    await store.put(bucket, "k", b"second", "text/plain")
    assert await store.get(bucket, "k") == b"second"


async def test_delete_removes_and_is_idempotent(store: Any, bucket: str) -> None:
    await store.put(bucket, "gone", b"x", "text/plain")
    await store.delete(bucket, "gone")
    await store.delete(bucket, "gone")
    with pytest.raises(ObjectNotFound):
        await store.get(bucket, "gone")


async def test_list_gives_sorted_keys_under_a_prefix(store: Any, bucket: str) -> None:
    for key in ("j2/thumb.jpg", "j1/thumb.jpg", "j1/other.webp", "x.jpg"):
        await store.put(bucket, key, b"x", "image/jpeg")
    assert await store.list(bucket, "j1/") == ["j1/other.webp", "j1/thumb.jpg"]
    assert await store.list(bucket) == ["j1/other.webp", "j1/thumb.jpg", "j2/thumb.jpg", "x.jpg"]


async def test_ensure_bucket_twice_is_success(store: Any, bucket: str) -> None:
    await store.ensure_bucket(bucket)
    await store.ping()


async def test_a_presigned_url_if_offered_downloads_the_object(store: Any, bucket: str) -> None:
    await store.put(bucket, "p.jpg", b"\xff\xd8hello", "image/jpeg")
    url = store.presigned_url(bucket, "p.jpg", timedelta(minutes=5))
    if url is None:
        assert type(store).__name__ == "LocalStore"  # the API streams local objects itself
        return
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == b"\xff\xd8hello"
