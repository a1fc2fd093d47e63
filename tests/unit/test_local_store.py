"""The local folder store keeps every object inside its bucket's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgpipe.adapters.storage.local import LocalStore


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", "a//b", "a\\b", "", "."])
async def test_a_key_that_could_leave_its_bucket_is_refused(tmp_path: Path, key: str) -> None:
    async with LocalStore(tmp_path / "objects") as store:
        with pytest.raises(ValueError):
            await store.put("bucket", key, b"x", "text/plain")
    assert not (tmp_path / "escape").exists()


async def test_nested_server_made_keys_land_inside_the_bucket(tmp_path: Path) -> None:
    async with LocalStore(tmp_path / "objects") as store:
        await store.put("bucket", "0b7c/thumbnail.jpg", b"x", "image/jpeg")
    assert (tmp_path / "objects/bucket/0b7c/thumbnail.jpg").read_bytes() == b"x"


async def test_a_folder_that_cannot_be_written_is_storage_unavailable_not_a_crash(tmp_path: Path) -> None:
    from imgpipe.domain.errors import StoreUnavailable

    async with LocalStore(tmp_path / "objects") as store:
        (tmp_path / "objects" / "bucket").write_text("a file where the bucket folder should be")
        with pytest.raises(StoreUnavailable):
            await store.put("bucket", "key.jpg", b"x", "image/jpeg")
        with pytest.raises(StoreUnavailable):
            await store.delete("bucket", "key.jpg")
