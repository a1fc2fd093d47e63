"""Apply and inspect the Alembic migrations that ship inside the package (SQLAlchemy, sync drivers, a thread)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.pool import NullPool

from imgpipe.domain.errors import DatabaseUnavailable

__all__ = ["current_revision", "head_revision", "upgrade"]

T = TypeVar("T")
_SCRIPTS = Path(__file__).resolve().parent.parent.parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``, the newest by default (idempotent)."""

    def run(conn: Connection) -> None:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    await asyncio.to_thread(_in_transaction, url, run)


async def current_revision(url: str) -> str | None:
    return await asyncio.to_thread(_in_transaction, url, lambda c: MigrationContext.configure(c).get_current_revision())


def _in_transaction(url: str, fn: Callable[[Connection], T]) -> T:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    args = {} if url.startswith("sqlite") else {"connect_timeout": 5}
    engine = create_engine(url, poolclass=NullPool, connect_args=args)
    try:
        with engine.begin() as conn:
            return fn(conn)
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnavailable(f"The database did not answer: {type(exc.orig).__name__}") from exc
    finally:
        engine.dispose()
