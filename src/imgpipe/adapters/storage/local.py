"""``LocalStore``: buckets as folders under one root; every write is a temp file renamed into place.

An upload is staged straight into its bucket's folder, so accepting it is an fsync and
a rename: no second copy of the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from imgpipe.domain.errors import ObjectNotFound, StoreUnavailable
from imgpipe.domain.ports import ObjectStream

__all__ = ["LocalStaged", "LocalStore"]

_CHUNK = 256 * 1024


class LocalStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    async def __aenter__(self) -> LocalStore:
        await asyncio.to_thread(_make_folders, self._root)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _path(self, bucket: str, key: str) -> Path:
        # Keys are server-made (UUIDs); still, never let one climb out of its bucket. Checked
        # on the key's text: resolving symlinks on every call would cost syscalls.
        if "\\" in key or any(part in ("", ".", "..") for part in key.split("/")):
            raise ValueError(f"object key escapes its bucket: {key!r}")
        return self._root / bucket / key

    async def ensure_bucket(self, bucket: str) -> None:
        await asyncio.to_thread(_make_folders, self._root / bucket)

    async def ping(self) -> None:
        if not await asyncio.to_thread(os.access, self._root, os.W_OK):
            raise StoreUnavailable(f"The storage folder {self._root} is missing or not writable.")

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        with _unavailable_on_os_error(bucket, key):
            await asyncio.to_thread(self._write, self._path(bucket, key), data)

    def stage(self, bucket: str) -> LocalStaged:
        folder = self._root / bucket
        with _unavailable_on_os_error(bucket, "(staged upload)"):
            try:
                fd, tmp = _temporary(folder)
            except FileNotFoundError:  # the bucket's folder is not there (yet): make it, once
                _make_folders(folder)
                fd, tmp = _temporary(folder)
        return LocalStaged(self, bucket, Path(tmp), os.fdopen(fd, "w+b"))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        """On a pool thread: as few system calls as the write needs, each one a hand-over of the GIL."""
        _make_folders(path.parent)
        fd, tmp = _temporary(path.parent)
        try:
            try:
                view = memoryview(data)
                while view:  # straight to the descriptor: a file object would stat, ioctl and seek it first
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)  # atomic: readers see the old object or the new, never a part
            _sync_folder(path.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"No object {bucket}/{key}.") from exc
        except OSError as exc:
            raise StoreUnavailable(f"The storage folder failed reading {bucket}/{key}: {exc.strerror}") from exc

    async def open(self, bucket: str, key: str) -> ObjectStream:
        path = self._path(bucket, key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"No object {bucket}/{key}.") from exc
        except OSError as exc:
            raise StoreUnavailable(f"The storage folder failed reading {bucket}/{key}: {exc.strerror}") from exc
        size = os.fstat(handle.fileno()).st_size

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                    yield chunk
            finally:
                handle.close()

        return ObjectStream(size=size, chunks=chunks())

    async def delete(self, bucket: str, key: str) -> None:
        with _unavailable_on_os_error(bucket, key):
            await asyncio.to_thread(self._path(bucket, key).unlink, missing_ok=True)

    async def list(self, bucket: str, prefix: str = "") -> list[str]:
        def walk() -> list[str]:
            base = self._root / bucket
            if not base.is_dir():
                return []
            keys = (p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
            return sorted(k for k in keys if k.startswith(prefix) and not Path(k).name.startswith(".tmp-"))

        return await asyncio.to_thread(walk)

    def presigned_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        return None  # the API streams local objects itself

    def local_path(self, bucket: str, key: str) -> Path | None:
        return self._path(bucket, key)


class LocalStaged:
    """A temporary file in the bucket's folder, renamed to its key on commit."""

    def __init__(self, store: LocalStore, bucket: str, tmp: Path, file: IO[bytes]) -> None:
        self._store = store
        self._bucket = bucket
        self._tmp = tmp
        self._file = file
        self._ended = False

    def write(self, data: bytes | memoryview) -> None:
        with _unavailable_on_os_error(self._bucket, "(staged upload)"):
            self._file.write(data)

    def reader(self) -> IO[bytes]:
        self._file.flush()
        self._file.seek(0)
        return self._file

    async def commit(self, key: str, content_type: str) -> None:
        path = self._store._path(self._bucket, key)
        with _unavailable_on_os_error(self._bucket, key):
            await asyncio.to_thread(self._commit, path)

    def _commit(self, path: Path) -> None:
        if self._ended:
            raise ValueError("this staged object was committed or discarded already")
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        if path.parent != self._tmp.parent:  # the staged file's own folder is there
            _make_folders(path.parent)
        os.replace(self._tmp, path)  # atomic: readers see the old object or the new, never a part
        self._ended = True
        _sync_folder(path.parent)

    async def discard(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._file.close()
        await asyncio.to_thread(self._tmp.unlink, missing_ok=True)


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, syncing each new folder's name into its parent.

    An object's own folder sync keeps its name, not the folder's: without the parent's sync, a
    power loss could lose a new folder (a job's variants) with the synced objects inside it.
    One ``mkdir`` when the folder exists or only it is missing (a job's variants), no stat first.
    A file in the folder's place is left for the write into it to fail on, as before.
    """
    try:
        os.mkdir(folder)
    except FileExistsError:
        return
    except FileNotFoundError:
        _make_folders(folder.parent)
        # Made by another writer meanwhile: it syncs the parent too, but maybe after this write returns.
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder)
    _sync_folder(folder.parent)


def _temporary(folder: Path) -> tuple[int, str]:
    """A new, empty file in ``folder`` that no other writer picks: its descriptor and path."""
    return tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power loss: the file's own fsync does not cover its new name."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _unavailable_on_os_error(bucket: str, key: str) -> Iterator[None]:
    # A full disk or a lost mount is the storage being away, as a dead S3 server would be.
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"The storage folder failed writing {bucket}/{key}: {exc.strerror}") from exc
