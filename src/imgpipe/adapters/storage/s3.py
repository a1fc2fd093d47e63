"""``S3Store``: the ObjectStore port on any S3-compatible server, over aiohttp with imgpipe's own SigV4.

Path-style addressing, header-signed requests with unsigned bodies (``sigv4``), one
keep-alive connection pool. Only the handful of S3 calls imgpipe makes: measured on
the server stack, aiobotocore's request machinery cost 2-3 ms of CPU per call, more
than everything else in storing an original or fetching one for the worker.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
from yarl import URL

from imgpipe.adapters.storage.sigv4 import Signer, canonical_path, canonical_query
from imgpipe.config import S3Settings
from imgpipe.domain.errors import ObjectNotFound, StoreUnavailable
from imgpipe.domain.ports import ObjectStream

__all__ = ["S3Staged", "S3Store"]

# A missing key is the object's absence; a missing bucket is storage not (yet) set up: retryable.
_MISSING = {"NoSuchKey", "NotFound"}
_ALREADY_THERE = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
_CHUNK = 256 * 1024
_PRESIGNED_CACHE = 10_000
# An upload up to 8 MiB waits for its PUT in memory while all of a store's uploads in memory hold
# at most 16 MiB; a larger one, or one past that budget, spills to a temporary file. A 1.5 MB photo
# written to a file and read back cost the API 0.7-1.1 ms of CPU more (server stack, 12 MP JPEGs).
_SPOOL_IN_MEMORY = 8 << 20
_SPOOL_MEMORY_TOTAL = 16 << 20
_PUT_FROM_MEMORY = 8 << 20  # a larger upload is streamed from its file to S3
_SMALL_BODY = 1 << 20  # aiohttp sends bigger in-memory bodies from a BytesIO
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class _Refused(Exception):
    """S3 answered with an error status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code = status, code


class S3Store:
    """Use as ``async with S3Store(cfg) as store``: the HTTP session lives as long as the block."""

    def __init__(self, cfg: S3Settings) -> None:
        self._cfg = cfg
        endpoint = cfg.endpoint_url or f"https://s3.{cfg.region}.amazonaws.com"
        self._signer = Signer(endpoint, cfg.access_key, cfg.secret_key, cfg.region)
        # Presigned URLs are for browsers, so they are signed for the public endpoint.
        self._public = Signer(cfg.public_endpoint_url or endpoint, cfg.access_key, cfg.secret_key, cfg.region)
        self._session: aiohttp.ClientSession | None = None
        self._buckets: list[str] = []
        self._spool_budget = _Budget(_SPOOL_MEMORY_TOTAL)
        self._presigned: dict[tuple[str, str], tuple[str, float]] = {}

    async def __aenter__(self) -> S3Store:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._cfg.timeout_seconds, sock_read=self._cfg.timeout_seconds
        )
        # auto_decompress off: objects come back byte for byte, whatever encoding they were stored with.
        self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        query: dict[str, str] | None = None,
        body: bytes | IO[bytes] = b"",
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> aiohttp.ClientResponse:
        """One signed request; S3's error answers raise ``_Refused``, transport failures pass through.

        A request that meets a connection the server closed meanwhile is sent once more.
        """
        assert self._session is not None, "use the store inside `async with`"
        path = canonical_path(self._signer.prefix, bucket, key)
        # Sent exactly as signed: percent-encoded once, by us.
        url = URL(self._signer.origin + path + (f"?{canonical_query(query)}" if query else ""), encoded=True)
        for attempt in (1, 2):
            signed = {**(headers or {}), **self._signer.headers(method, path, query)}
            data: IO[bytes] | bytes = body
            if isinstance(body, bytes) and len(body) > _SMALL_BODY:
                data = io.BytesIO(body)  # sent in pieces from memory, no thread; aiohttp warns on big bytes
            elif not isinstance(body, bytes):
                body.seek(0)
            try:
                response = await self._session.request(
                    method, url, data=data, headers=signed, skip_auto_headers=("Content-Type",)
                )
            except aiohttp.ServerDisconnectedError:
                if attempt == 2:
                    raise
                continue
            if response.status >= 300:
                payload = await response.read()
                response.release()
                raise _refusal(response.status, payload)
            if not stream:
                await response.read()
                response.release()
            return response
        raise AssertionError("unreachable")

    async def _call(self, what: str, method: str, bucket: str, key: str = "", **kwargs: Any) -> aiohttp.ClientResponse:
        try:
            return await self._request(method, bucket, key, **kwargs)
        except _Refused as exc:
            if exc.code in _MISSING or (exc.status == 404 and exc.code != "NoSuchBucket" and key):
                raise ObjectNotFound(f"No object {bucket}/{key}.") from exc
            raise StoreUnavailable(f"The object storage refused {what}: {exc.code or exc.status}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise StoreUnavailable(f"The object storage did not answer {what}: {type(exc).__name__}") from exc

    async def ensure_bucket(self, bucket: str) -> None:
        body = b""
        if self._cfg.region != "us-east-1":
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{self._cfg.region}</LocationConstraint></CreateBucketConfiguration>"
            ).encode()
        try:
            await self._request("PUT", bucket, body=body)
        except _Refused as exc:
            if exc.code not in _ALREADY_THERE:
                raise StoreUnavailable(f"Could not create the bucket {bucket}: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise StoreUnavailable(f"The object storage did not answer: {type(exc).__name__}") from exc
        if bucket not in self._buckets:
            self._buckets.append(bucket)

    async def ping(self) -> None:
        if not self._buckets:
            await self._call("list_buckets", "GET", "")
        for bucket in self._buckets:
            try:
                await self._request("HEAD", bucket)
            except _Refused as exc:
                raise StoreUnavailable(f"The bucket {bucket} is missing or refused: {exc.status}.") from exc
            except _TRANSPORT_ERRORS as exc:
                raise StoreUnavailable(f"The object storage did not answer: {type(exc).__name__}") from exc

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        await self._call("put_object", "PUT", bucket, key, body=data, headers={"Content-Type": content_type})

    def stage(self, bucket: str) -> S3Staged:
        return S3Staged(self, bucket, self._spool_budget)

    async def _put_file(self, bucket: str, key: str, fileobj: IO[bytes], size: int, content_type: str) -> None:
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        await self._call("put_object", "PUT", bucket, key, body=fileobj, headers=headers)

    async def get(self, bucket: str, key: str) -> bytes:
        response = await self._call("get_object", "GET", bucket, key, stream=True)
        try:
            return await response.read()
        except _TRANSPORT_ERRORS as exc:
            raise StoreUnavailable(f"The object storage broke off reading {bucket}/{key}.") from exc
        finally:
            response.release()

    async def open(self, bucket: str, key: str) -> ObjectStream:
        response = await self._call("get_object", "GET", bucket, key, stream=True)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    yield chunk
            finally:
                response.release()

        return ObjectStream(size=int(response.headers.get("Content-Length", 0)), chunks=chunks())

    async def delete(self, bucket: str, key: str) -> None:
        try:
            await self._call("delete_object", "DELETE", bucket, key)
        except ObjectNotFound:
            return

    async def list(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        query = {"list-type": "2", "prefix": prefix}
        while True:
            response = await self._call("list_objects_v2", "GET", bucket, query=query, stream=True)
            try:
                root = ET.fromstring(await response.read())
            except _TRANSPORT_ERRORS as exc:
                raise StoreUnavailable(f"The object storage broke off listing {bucket}.") from exc
            finally:
                response.release()
            found = {_local(el.tag): el for el in root}
            keys.extend(el.text or "" for el in root.iter() if _local(el.tag) == "Key")
            truncated, token = found.get("IsTruncated"), found.get("NextContinuationToken")
            if truncated is None or truncated.text != "true" or token is None or not token.text:
                return sorted(keys)
            query = {**query, "continuation-token": token.text}

    def local_path(self, bucket: str, key: str) -> Path | None:
        return None

    def presigned_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        # Every status response asks again: reuse a URL while at least two thirds of its life is left.
        now = time.monotonic()
        cached = self._presigned.get((bucket, key))
        if cached is not None and now - cached[1] < expires.total_seconds() / 3:
            return cached[0]
        url = self._public.presigned_get(bucket, key, expires)
        if len(self._presigned) >= _PRESIGNED_CACHE:
            self._presigned.clear()
        self._presigned[(bucket, key)] = (url, now)
        return url


def _local(tag: str) -> str:
    """An element's name without its XML namespace (servers differ in sending one)."""
    return tag.rsplit("}", 1)[-1]


def _refusal(status: int, payload: bytes) -> _Refused:
    code, message = "", ""
    if payload:
        try:
            found = {_local(el.tag): el.text or "" for el in ET.fromstring(payload)}
            code, message = found.get("Code", ""), found.get("Message", "")
        except ET.ParseError:
            message = payload[:200].decode(errors="replace")
    return _Refused(status, code or {404: "NotFound"}.get(status, ""), message)


class _Budget:
    """Bytes that staged uploads may hold in memory at once; taken and given back under a lock."""

    def __init__(self, total: int) -> None:
        self.free = total
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if n > self.free:
                return False
            self.free -= n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.free += n


class S3Staged:
    """Spooled here, in memory while it is small and the store's budget lasts, else in a temporary
    file; one PUT on commit.

    The temporary file is a plain one (not ``SpooledTemporaryFile``, which wraps it), so the
    probe can map it rather than read it chunk by chunk.
    """

    def __init__(self, store: S3Store, bucket: str, budget: _Budget) -> None:
        self._store = store
        self._bucket = bucket
        self._budget = budget
        self._file: IO[bytes] = io.BytesIO()
        self._size = 0
        self._held = 0  # what this upload has taken from the budget: its bytes in memory

    def write(self, data: bytes | memoryview) -> None:
        n = memoryview(data).nbytes
        try:
            if isinstance(self._file, io.BytesIO) and not self._keep(n):
                self._spill(self._file)
            self._file.write(data)
        except OSError as exc:
            raise StoreUnavailable(f"Could not spool the upload: {exc.strerror}") from exc
        self._size += n

    def _keep(self, n: int) -> bool:
        """Whether ``n`` more bytes may stay in memory; if so, they are taken from the budget."""
        if self._size + n > _SPOOL_IN_MEMORY or not self._budget.take(n):
            return False
        self._held += n
        return True

    def _spill(self, memory: io.BytesIO) -> None:
        spilled = tempfile.TemporaryFile()
        try:
            spilled.write(memory.getvalue())
        except BaseException:
            spilled.close()
            raise
        memory.close()
        self._file = spilled
        self._give_back()

    def _give_back(self) -> None:
        self._budget.give(self._held)
        self._held = 0

    def reader(self) -> IO[bytes]:
        self._file.seek(0)
        return self._file

    async def commit(self, key: str, content_type: str) -> None:
        if isinstance(self._file, io.BytesIO):
            await self._store.put(self._bucket, key, self._file.getvalue(), content_type)
        elif self._size <= _PUT_FROM_MEMORY:
            # One read, one send: streaming a file goes 64 KiB at a time, each read a thread
            # hop (30 of them for a 2 MB photo). Bigger uploads stream, memory stays flat.
            self._file.seek(0)
            data = await asyncio.to_thread(self._file.read)
            await self._store.put(self._bucket, key, data, content_type)
        else:
            await self._store._put_file(self._bucket, key, self._file, self._size, content_type)
        await self.discard()

    async def discard(self) -> None:
        self._file.close()
        self._give_back()
