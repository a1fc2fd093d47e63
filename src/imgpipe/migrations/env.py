"""Alembic environment: one connection given by ``imgpipe.adapters.db.migrate``; batch mode for SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from imgpipe.adapters.db.tables import metadata

connection = context.config.attributes["connection"]
is_sqlite = connection.dialect.name == "sqlite"
if connection.dialect.name == "postgresql":
    # Two processes migrating at once (say, `imgpipe run` twice) queue here.
    connection.execute(text("SELECT pg_advisory_xact_lock(7311504203)"))
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=is_sqlite,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
