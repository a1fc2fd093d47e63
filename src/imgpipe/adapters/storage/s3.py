"""``S3Store``: the ObjectStore port on any S3-compatible server through aiobotocore (path-style, SigV4)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from imgpipe.adapters.storage.presign import Presigner
from imgpipe.config import S3Settings
from imgpipe.domain.errors import ObjectNotFound, StoreUnavailable
from imgpipe.domain.ports import ObjectStream

__all__ = ["S3Staged", "S3Store"]

# A missing key is the object's absence; a missing bucket is storage not (yet) set up: retryable.
_MISSING = {"NoSuchKey", "404", "NotFound"}
_ALREADY_THERE = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
_CHUNK = 256 * 1024
_PRESIGNED_CACHE = 10_000
_SPOOL_IN_MEMORY = 1 << 20  # a larger upload spills to a temporary file
_PUT_FROM_MEMORY = 8 << 20  # a larger one is streamed from its file to S3


class S3Store:
    """Use as ``async with S3Store(cfg) as store``: the HTTP session lives as long as the block."""

    def __init__(self, cfg: S3Settings) -> None:
        self._cfg = cfg
        self._stack = AsyncExitStack()
        self._client: Any = None
        self._signer: Presigner | None = None
        self._buckets: list[str] = []
        self._presigned: dict[tuple[str, str], tuple[str, float]] = {}

    async def __aenter__(self) -> S3Store:
        cfg = self._cfg
        common: dict[str, Any] = {
            "signature_version": "s3v4",
            # Requests are signed, bodies are not (UNSIGNED-PAYLOAD, which S3 and MinIO accept):
            # botocore would otherwise SHA-256 every body sent over plain http, 5 ms per
            # 2 MB upload here, the largest single cost of storing an original. TLS, or the
            # private network of the compose stack, carries the bodies' integrity, and imgpipe
            # records each object's own BLAKE3 checksum.
            "s3": {"addressing_style": "path", "payload_signing_enabled": False},
            "connect_timeout": cfg.timeout_seconds,
            "read_timeout": cfg.timeout_seconds,
            # imgpipe retries with its own backoff; one quick retry here smooths a blip.
            "retries": {"max_attempts": 2, "mode": "standard"},
            # imgpipe hashes what it stores itself (a BLAKE3 checksum in the database); CRC32 on every
            # request and response only costs CPU. Parameters are ours, not user input.
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
            "parameter_validation": False,
        }
        credentials = {
            "region_name": cfg.region,
            "aws_access_key_id": cfg.access_key,
            "aws_secret_access_key": cfg.secret_key,
        }
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3", endpoint_url=cfg.endpoint_url, config=AioConfig(**common), **credentials
            )
        )
        # Presigned URLs are for browsers, so they are signed for the public endpoint.
        self._signer = Presigner(
            cfg.public_endpoint_url or cfg.endpoint_url or f"https://s3.{cfg.region}.amazonaws.com",
            cfg.access_key,
            cfg.secret_key,
            cfg.region,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _call(self, op: str, **params: Any) -> Any:
        try:
            return await getattr(self._client, op)(**params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise ObjectNotFound(f"No object {params.get('Bucket')}/{params.get('Key', '')}.") from exc
            raise StoreUnavailable(f"The object storage refused {op}: {code or exc}") from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"The object storage did not answer {op}: {type(exc).__name__}") from exc

    async def ensure_bucket(self, bucket: str) -> None:
        params: dict[str, Any] = {"Bucket": bucket}
        if self._cfg.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self._cfg.region}
        try:
            await self._client.create_bucket(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _ALREADY_THERE:
                raise StoreUnavailable(f"Could not create the bucket {bucket}: {exc}") from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"The object storage did not answer: {type(exc).__name__}") from exc
        if bucket not in self._buckets:
            self._buckets.append(bucket)

    async def ping(self) -> None:
        if not self._buckets:
            await self._call("list_buckets")
        for bucket in self._buckets:
            try:
                await self._call("head_bucket", Bucket=bucket)
            except ObjectNotFound as exc:
                raise StoreUnavailable(f"The bucket {bucket} is missing.") from exc

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        await self._call("put_object", Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def stage(self, bucket: str) -> S3Staged:
        return S3Staged(self, bucket)

    async def _put_file(self, bucket: str, key: str, fileobj: IO[bytes], size: int, content_type: str) -> None:
        fileobj.seek(0)
        await self._call(
            "put_object", Bucket=bucket, Key=key, Body=fileobj, ContentLength=size, ContentType=content_type
        )

    async def get(self, bucket: str, key: str) -> bytes:
        response = await self._call("get_object", Bucket=bucket, Key=key)
        try:
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"The object storage broke off reading {bucket}/{key}.") from exc

    async def open(self, bucket: str, key: str) -> ObjectStream:
        response = await self._call("get_object", Bucket=bucket, Key=key)
        body = response["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            async with body:
                async for chunk in body.iter_chunks(_CHUNK):
                    yield chunk

        return ObjectStream(size=int(response["ContentLength"]), chunks=chunks())

    async def delete(self, bucket: str, key: str) -> None:
        await self._call("delete_object", Bucket=bucket, Key=key)

    async def list(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = await self._call("list_objects_v2", Bucket=bucket, Prefix=prefix, **token)
            keys.extend(item["Key"] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def local_path(self, bucket: str, key: str) -> Path | None:
        return None

    def presigned_url(self, bucket: str, key: str, expires: timedelta) -> str | None:
        # Signing costs about a millisecond and every status poll asks again: reuse a URL
        # while at least two thirds of its life is left.
        now = time.monotonic()
        cached = self._presigned.get((bucket, key))
        if cached is not None and now - cached[1] < expires.total_seconds() / 3:
            return cached[0]
        assert self._signer is not None, "use the store inside `async with`"
        url = self._signer.url(bucket, key, expires)
        if len(self._presigned) >= _PRESIGNED_CACHE:
            self._presigned.clear()
        self._presigned[(bucket, key)] = (url, now)
        return url


class S3Staged:
    """Spooled here (memory, then a temporary file past 1 MiB); one PUT on commit."""

    def __init__(self, store: S3Store, bucket: str) -> None:
        self._store = store
        self._bucket = bucket
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)
        self._size = 0

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise StoreUnavailable(f"Could not spool the upload: {exc.strerror}") from exc
        self._size += len(data)

    def reader(self) -> IO[bytes]:
        self._file.seek(0)
        return self._file

    async def commit(self, key: str, content_type: str) -> None:
        if self._size <= _PUT_FROM_MEMORY:
            # One read, one send: aiohttp would stream a file 64 KiB at a time, each read a
            # thread hop (30 of them for a 2 MB photo). Bigger uploads stream, memory stays flat.
            self._file.seek(0)
            data = await asyncio.to_thread(self._file.read)
            await self._store.put(self._bucket, key, data, content_type)
        else:
            await self._store._put_file(self._bucket, key, self._file, self._size, content_type)
        self._file.close()

    async def discard(self) -> None:
        self._file.close()
