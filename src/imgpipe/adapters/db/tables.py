"""Table definitions shared by the repository and the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
)

__all__ = ["UTCDateTime", "jobs", "metadata", "variants"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect; SQLite, which has no time zones, stores naive UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("imgpipe stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


jobs = Table(
    "jobs",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("attempts", Integer, nullable=False, default=0),
    # Who may work on it until when; a worker extends it while it works.
    Column("lease_until", UTCDateTime()),
    # When the broker confirmed its message; NULL means "publish it (again)".
    Column("published_at", UTCDateTime()),
    Column("filename", String(255)),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Index(None, "created_at", "id"),
    Index(None, "status", "lease_until"),
)

variants = Table(
    "variants",
    metadata,
    Column("job_id", Uuid(), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("type", String(32), primary_key=True),  # one object per variant type, by construction
    Column("bucket", String(63), nullable=False),
    Column("key", String(512), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("format", String(16)),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("checksum", String(80)),  # "blake3:<hex>"; older rows "sha256:<hex>"
    Column("created_at", UTCDateTime(), nullable=False),
)
