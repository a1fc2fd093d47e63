"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imgpipe.adapters.db.engine import open_database
from imgpipe.adapters.db.migrate import upgrade
from imgpipe.adapters.db.repository import SqlJobRepository
from imgpipe.config import Settings


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqlJobRepository]:
    """A job repository on a migrated SQLite database of the test's own."""
    url = Settings(database_url=f"sqlite:///{tmp_path}/jobs.db").database.url
    await upgrade(url)
    database = open_database(url)
    yield SqlJobRepository(database)
    await database.dispose()
