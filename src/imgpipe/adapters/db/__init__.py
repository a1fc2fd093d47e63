"""The job repository on SQLAlchemy 2: PostgreSQL (psycopg) for servers, SQLite (stdlib driver) embedded."""
