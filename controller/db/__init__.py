"""State in SQL (SQLite in WAL mode by default), migrated with Alembic on every start."""
