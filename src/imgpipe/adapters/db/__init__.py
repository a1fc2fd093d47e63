"""The job repository on SQLAlchemy 2: PostgreSQL (psycopg) in the server stack, SQLite (aiosqlite) embedded."""
