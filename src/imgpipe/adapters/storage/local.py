"""``LocalStore``: buckets as folders under one root; every write is a temp file renamed into place."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from imgpipe.domain.errors import ObjectNotFound, StoreUnavailable
from imgpipe.domain.ports import ObjectStream

__all__ = ["LocalStore"]

_CHUNK = 256 * 1024


class LocalStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    async def __aenter__(self) -> LocalStore:
        await asyncio.to_thread(self._root.mkdir, parents=True, exist_ok=True)
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
        await asyncio.to_thread((self._root / bucket).mkdir, parents=True, exist_ok=True)

    async def ping(self) -> None:
        if not await asyncio.to_thread(os.access, self._root, os.W_OK):
            raise StoreUnavailable(f"The storage folder {self._root} is missing or not writable.")

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        with _unavailable_on_os_error(bucket, key):
            await asyncio.to_thread(self._write, self._path(bucket, key), lambda f: f.write(data))

    async def put_file(self, bucket: str, key: str, fileobj: IO[bytes], size: int, content_type: str) -> None:
        def copy(out: IO[bytes]) -> None:
            fileobj.seek(0)
            shutil.copyfileobj(fileobj, out, _CHUNK)

        with _unavailable_on_os_error(bucket, key):
            await asyncio.to_thread(self._write, self._path(bucket, key), copy)

    @staticmethod
    def _write(path: Path, fill: Callable[[IO[bytes]], object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)  # atomic: readers see the old object or the new, never a part
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


@contextmanager
def _unavailable_on_os_error(bucket: str, key: str) -> Iterator[None]:
    # A full disk or a lost mount is the storage being away, as a dead S3 server would be.
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"The storage folder failed writing {bucket}/{key}: {exc.strerror}") from exc
