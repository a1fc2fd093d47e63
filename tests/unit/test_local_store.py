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


async def test_an_object_and_its_name_reach_the_disk_before_the_write_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fsync the file, rename it into place, then fsync the folder: without the last, a power
    # loss could keep the bytes but lose the name, and an accepted upload with it.
    import os
    import stat

    from imgpipe.adapters.storage import local

    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    root = tmp_path / "objects"

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            steps.append(f"fsync folder {Path(os.readlink(f'/proc/self/fd/{fd}')).relative_to(tmp_path)}")
        else:
            steps.append("fsync file")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        steps.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(local.os, "fsync", fsync)
    monkeypatch.setattr(local.os, "replace", replace)
    async with LocalStore(root) as store:
        await store.ensure_bucket("bucket")
        steps.clear()
        await store.put("bucket", "a/thumbnail.jpg", b"x", "image/jpeg")
        # The new folder "a" is named in "bucket": synced there, or a power loss could lose it whole.
        assert steps == ["fsync folder objects/bucket", "fsync file", "rename", "fsync folder objects/bucket/a"]
        steps.clear()
        await store.put("bucket", "a/small.jpg", b"x", "image/jpeg")
        assert steps == ["fsync file", "rename", "fsync folder objects/bucket/a"]
        steps.clear()
        staged = store.stage("bucket")
        staged.write(b"original")
        await staged.commit("original.jpg", "image/jpeg")
        assert steps == ["fsync file", "rename", "fsync folder objects/bucket"]
        steps.clear()
        await store.put("other", "b/c/thumbnail.jpg", b"x", "image/jpeg")
        assert steps == [
            "fsync folder objects",
            "fsync folder objects/other",
            "fsync folder objects/other/b",
            "fsync file",
            "rename",
            "fsync folder objects/other/b/c",
        ]
    assert (tmp_path / "objects/bucket/original.jpg").read_bytes() == b"original"


async def test_writes_into_existing_or_new_job_folders_make_no_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each system call on the store's pool thread is a hand-over of the GIL: the folder is
    # made by trying mkdir, never looked at first.
    import os

    calls: list[str] = []
    real_stat = os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        calls.append(str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    async with LocalStore(tmp_path / "objects") as store:
        await store.ensure_bucket("bucket")
        monkeypatch.setattr(os, "stat", stat)
        await store.put("bucket", "job/thumbnail.jpg", b"new folder", "image/jpeg")
        await store.put("bucket", "job/small.jpg", b"existing folder", "image/jpeg")
        staged = store.stage("bucket")
        staged.write(b"original")
        await staged.commit("original.jpg", "image/jpeg")
    assert calls == []
    assert (tmp_path / "objects/bucket/job/thumbnail.jpg").read_bytes() == b"new folder"
    assert (tmp_path / "objects/bucket/job/small.jpg").read_bytes() == b"existing folder"
    assert (tmp_path / "objects/bucket/original.jpg").read_bytes() == b"original"


async def test_an_upload_staged_after_its_bucket_folder_went_away_makes_it_again(tmp_path: Path) -> None:
    import shutil

    async with LocalStore(tmp_path / "objects") as store:
        await store.ensure_bucket("bucket")
        shutil.rmtree(tmp_path / "objects")
        staged = store.stage("bucket")
        staged.write(b"original")
        await staged.commit("nested/original.jpg", "image/jpeg")
        assert await store.get("bucket", "nested/original.jpg") == b"original"
        assert await store.list("bucket") == ["nested/original.jpg"]


async def test_a_big_object_is_written_whole(tmp_path: Path) -> None:
    import os

    data = os.urandom(9 * 1024 * 1024 + 3)
    async with LocalStore(tmp_path / "objects") as store:
        await store.put("bucket", "job/big.png", data, "image/png")
        assert await store.get("bucket", "job/big.png") == data
    assert [p.name for p in (tmp_path / "objects/bucket/job").iterdir()] == ["big.png"]  # no temporary left
