"""The shipped migrations carry existing data forward, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from imgpipe.adapters.db.engine import open_database
from imgpipe.adapters.db.migrate import upgrade
from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.adapters.db.tables import jobs
from imgpipe.config import Settings
from support.services import require_postgres, throwaway_database

FIRST = "20261127_0001"


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield Settings(database_url=f"sqlite:///{tmp_path}/old.db").database.url
        return
    with throwaway_database(require_postgres()) as url:
        yield Settings(database_url=url).database.url


async def test_sha256_rows_of_the_first_schema_read_back_as_labelled_checksums(empty_url: str) -> None:
    await upgrade(empty_url, FIRST)
    job_id, now, digest = uuid.uuid4(), datetime.now(UTC), "ab" * 32
    # Written through SQLAlchemy, as the first schema had it: a bare hex sha256 column.
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                jobs.insert(), {"id": job_id, "status": "DONE", "created_at": now, "updated_at": now, "attempts": 1}
            )
            conn.execute(
                text(
                    "INSERT INTO variants (job_id, type, bucket, key, content_type, width, height, bytes, sha256,"
                    " created_at) VALUES (:job, 'original', 'b', 'k.jpg', 'image/jpeg', 4, 3, 9, :digest, :now)"
                ),
                {"job": job_id.hex if "sqlite" in empty_url else job_id, "digest": digest, "now": now},
            )
    finally:
        engine.dispose()

    await upgrade(empty_url)
    database = open_database(empty_url)
    try:
        job = await SqlJobRepository(database).get(job_id)
    finally:
        await database.dispose()
    assert job is not None and job.original is not None
    assert job.original.checksum == f"sha256:{digest}"
    # ...and the rows SQLAlchemy's types wrote read back through imgpipe's plain SQL.
    assert job.id == job_id and job.created_at == now and job.status.value == "DONE"


def _status_triggers(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'jobs'::regclass AND NOT tgisinternal"
            found = conn.execute(text(query))
            return [row[0] for row in found]
    finally:
        engine.dispose()


async def test_the_status_announcement_comes_and_goes_with_its_migration() -> None:
    from alembic import command

    from imgpipe.adapters.db.migrate import _config

    with throwaway_database(require_postgres()) as raw:
        url = Settings(database_url=raw).database.url
        await upgrade(url)
        assert _status_triggers(url) == ["jobs_status_changed"]
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                cfg = _config()
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "20261128_0002")
        finally:
            engine.dispose()
        assert _status_triggers(url) == []
        await upgrade(url)  # and back: nothing was left behind to collide with
        assert _status_triggers(url) == ["jobs_status_changed"]
