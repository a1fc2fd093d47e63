"""Alembic migrations, shipped inside the package so ``imgpipe migrate`` works from any install."""
