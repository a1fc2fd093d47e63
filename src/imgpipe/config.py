"""Settings, read only from ``IMGPIPE_*`` environment variables; each backend is picked by its URL scheme.

Nothing here connects to anything. ``Settings()`` parses and validates; the
``database``, ``storage`` and ``broker`` properties give the tagged section that
the composition root (``bootstrap``) matches on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "AmqpSettings",
    "DatabaseSettings",
    "LocalStorageSettings",
    "MemoryBrokerSettings",
    "S3Settings",
    "Settings",
    "SettingsError",
]

# Local-only credentials of the compose stack's MinIO; refused outside development.
_DEV_SECRETS = {"minioadmin", "guest", "changeme", "password"}


class SettingsError(ValueError):
    """The configuration cannot work; the message says which variable to fix."""


# --- tagged sections ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str  # a SQLAlchemy URL: postgresql+psycopg://... or sqlite:///...


@dataclass(frozen=True, slots=True)
class LocalStorageSettings:
    root: Path


@dataclass(frozen=True, slots=True)
class S3Settings:
    endpoint_url: str | None
    public_endpoint_url: str | None
    access_key: str
    secret_key: str
    region: str
    presign_expires: timedelta
    timeout_seconds: float


@dataclass(frozen=True, slots=True)
class AmqpSettings:
    url: str
    queue: str
    delivery_limit: int
    publish_timeout_seconds: float


@dataclass(frozen=True, slots=True)
class MemoryBrokerSettings:
    delivery_limit: int


StorageSettings = LocalStorageSettings | S3Settings
BrokerSettings = AmqpSettings | MemoryBrokerSettings


class Settings(BaseSettings):
    """Every setting has a default that works on one machine with no servers."""

    model_config = SettingsConfigDict(env_prefix="IMGPIPE_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./data")

    # Backends, each picked by its URL scheme; empty means "embedded, under data_dir".
    database_url: str = ""
    broker_url: str = "memory://"
    storage_url: str = ""

    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    s3_timeout_seconds: float = Field(default=10.0, gt=0)
    presign_expires_seconds: int = Field(default=900, gt=0, le=7 * 24 * 3600)
    bucket_original: str = "images-original"
    bucket_processed: str = "images-processed"

    queue_name: str = "imgpipe.jobs"
    delivery_limit: int = Field(default=10, ge=1)
    publish_timeout_seconds: float = Field(default=5.0, gt=0)

    host: str = "127.0.0.1"
    forwarded_allow_ips: str = "127.0.0.1"  # proxies trusted for X-Forwarded-Proto/For (comma list, or *)
    port: int = Field(default=8000, ge=0, le=65535)
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=100_000_000, gt=0)
    upload_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    upload_timeout_seconds: float = Field(default=300.0, gt=0)
    max_concurrent_uploads: int = Field(default=64, ge=1)

    thumbnail_size: int = Field(default=256, ge=16, le=4096)
    jpeg_quality: int = Field(default=80, ge=1, le=100)

    worker_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    prefetch: int = Field(default=0, ge=0)  # 0: the concurrency
    max_attempts: int = Field(default=3, ge=1)
    lease_seconds: float = Field(default=60.0, gt=0)
    job_timeout_seconds: float = Field(default=120.0, gt=0)
    storage_retries: int = Field(default=4, ge=0)
    retry_backoff_seconds: float = Field(default=0.5, ge=0)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    reconcile_interval_seconds: float = Field(default=15.0, gt=0)
    republish_after_seconds: float = Field(default=10.0, gt=0)
    requeue_pending_after_seconds: float = Field(default=900.0, gt=0)
    kernel_max_rss_mb: int = Field(default=1024, ge=64)
    # Kept between renders for the next to reuse; at most half of kernel_max_rss_mb (bootstrap.build_kernel).
    kernel_keep_heap_mb: int = Field(default=256, ge=0)
    # The api, worker and run processes' own: buffers up to this come from a heap that keeps it (imgpipe.heap).
    keep_heap_mb: int = Field(default=32, ge=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"  # auto: console on a terminal, else JSON

    @model_validator(mode="after")
    def _check(self) -> Settings:
        # Parse every section once so a bad variable fails at start, not at first use.
        self.database  # noqa: B018
        storage = self.storage
        self.broker  # noqa: B018
        if self.env == "production" and isinstance(storage, S3Settings):
            if storage.secret_key in _DEV_SECRETS or storage.access_key in _DEV_SECRETS:
                raise SettingsError(
                    "IMGPIPE_S3_ACCESS_KEY/IMGPIPE_S3_SECRET_KEY use a development default in production"
                )
        if self.env == "production" and "guest:guest@" in self.broker_url:
            raise SettingsError("IMGPIPE_BROKER_URL uses RabbitMQ's guest account in production")
        return self

    # --- derived values ---------------------------------------------------------

    @property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings(url=_database_url(self.database_url, self.data_dir))

    @property
    def storage(self) -> StorageSettings:
        url = self.storage_url
        if not url:
            return LocalStorageSettings(root=(self.data_dir / "objects").resolve())
        scheme = urlsplit(url).scheme
        if scheme == "file":
            return LocalStorageSettings(root=_path_of_file_url(url))
        if scheme == "s3":
            if not self.s3_access_key or not self.s3_secret_key:
                raise SettingsError("IMGPIPE_STORAGE_URL=s3:// needs IMGPIPE_S3_ACCESS_KEY and IMGPIPE_S3_SECRET_KEY")
            return S3Settings(
                endpoint_url=self.s3_endpoint_url or None,
                public_endpoint_url=self.s3_public_endpoint_url or self.s3_endpoint_url or None,
                access_key=self.s3_access_key,
                secret_key=self.s3_secret_key,
                region=self.s3_region,
                presign_expires=timedelta(seconds=self.presign_expires_seconds),
                timeout_seconds=self.s3_timeout_seconds,
            )
        raise SettingsError(f"IMGPIPE_STORAGE_URL: unknown scheme {scheme!r} (use file:///path or s3://)")

    @property
    def broker(self) -> BrokerSettings:
        scheme = urlsplit(self.broker_url).scheme
        if scheme == "memory":
            return MemoryBrokerSettings(delivery_limit=self.delivery_limit)
        if scheme in ("amqp", "amqps"):
            return AmqpSettings(
                url=self.broker_url,
                queue=self.queue_name,
                delivery_limit=self.delivery_limit,
                publish_timeout_seconds=self.publish_timeout_seconds,
            )
        raise SettingsError(f"IMGPIPE_BROKER_URL: unknown scheme {scheme!r} (use memory:// or amqp://)")

    @property
    def effective_prefetch(self) -> int:
        # Two jobs per kernel process: while a kernel renders one, the next is claimed (and its
        # original fetched) and the last one's variant stored and its job completed, so a kernel
        # never waits on storage or the database between jobs: +14 % images/s on 4 MP JPEGs and
        # +18 % on 12 MP with 2 kernels (``bench/``'s embedded stack, steady rate, A/B in one run). The price:
        # each job in hand holds its original in memory (S3), up to twice the concurrency's worth.
        return self.prefetch or 2 * self.worker_concurrency

    @property
    def public_origin(self) -> str:
        """Where a person on this machine opens the API (0.0.0.0 is not an address to browse to)."""
        host = "localhost" if self.host in ("0.0.0.0", "::", "127.0.0.1") else self.host
        return f"http://{host}:{self.port}"


def _database_url(url: str, data_dir: Path) -> str:
    """Accept the plain URLs people write; imgpipe speaks psycopg (PostgreSQL) and sqlite3."""
    if not url:
        return f"sqlite:///{(data_dir / 'imgpipe.db').resolve()}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise SettingsError("IMGPIPE_DATABASE_URL must look like postgresql://... or sqlite:///path")
    if scheme in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+asyncpg"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return f"sqlite://{rest}"
    raise SettingsError(f"IMGPIPE_DATABASE_URL: unknown scheme {scheme!r} (use postgresql:// or sqlite:///)")


def _path_of_file_url(url: str) -> Path:
    parts = urlsplit(url)
    # file:///abs/path and file://./relative (a common shorthand) both work.
    raw = (parts.netloc + parts.path) if parts.netloc in (".", "..") else parts.path
    if not raw:
        raise SettingsError("IMGPIPE_STORAGE_URL=file:// needs a path, e.g. file:///var/lib/imgpipe/objects")
    return Path(raw).resolve()
