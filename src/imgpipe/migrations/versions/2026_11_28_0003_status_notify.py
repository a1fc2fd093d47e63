"""PostgreSQL announces every job status change: ``NOTIFY imgpipe_job_status, '<job id>'``.

An API process LISTENs (``adapters/db/listener.py``) and answers a status long-poll as
soon as any worker, in any process, moves the job. SQLite has no such thing and needs
none: there the long-poll is woken by the process that writes. The price: PostgreSQL
queues notifications under one lock at commit, so status changes commit one at a time,
which matters at thousands of changes a second, not at the hundreds a worker fleet makes.

Revision ID: 20261128_0003
Revises: 20261128_0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "20261128_0003"
down_revision = "20261128_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Sent when the transaction commits; two changes of one job in one transaction send one.
    op.execute(
        """
        CREATE FUNCTION imgpipe_job_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('imgpipe_job_status', NEW.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER jobs_status_changed AFTER UPDATE OF status ON jobs FOR EACH ROW"
        " WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION imgpipe_job_status_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS jobs_status_changed ON jobs")
    op.execute("DROP FUNCTION IF EXISTS imgpipe_job_status_changed()")
