"""Variants carry ``checksum`` ("algorithm:hex", BLAKE3 from now on) instead of a bare ``sha256``.

Revision ID: 20261128_0002
Revises: 20261127_0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261128_0002"
down_revision = "20261127_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        batch.alter_column("sha256", new_column_name="checksum", type_=sa.String(80), existing_nullable=True)
    op.execute("UPDATE variants SET checksum = 'sha256:' || checksum WHERE checksum IS NOT NULL")


def downgrade() -> None:
    # Only SHA-256 values fit the old column; BLAKE3 ones are dropped.
    op.execute("UPDATE variants SET checksum = CASE WHEN checksum LIKE 'sha256:%' THEN substr(checksum, 8) END")
    with op.batch_alter_table("variants") as batch:
        batch.alter_column("checksum", new_column_name="sha256", type_=sa.String(64), existing_nullable=True)
