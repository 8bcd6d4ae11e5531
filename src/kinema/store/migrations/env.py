"""Alembic's entry point: runs migrations in a write transaction of the `Database` passed in.

The transaction first takes the migration's critical section (an advisory lock on PostgreSQL,
the write lock on SQLite), so that two starts migrating at once take turns: the second finds
the schema already at its newest and does nothing.
"""

from __future__ import annotations

from alembic import context

from kinema.store.database import MIGRATION_LOCK, Database
from kinema.store.dialects import serialise
from kinema.store.schema import metadata

database = context.config.attributes.get("database")
if not isinstance(database, Database):
    raise RuntimeError("run migrations through kinema.store.database.Database.migrate (kinema migrate)")

with database.write() as connection:
    serialise(connection, MIGRATION_LOCK)
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=database.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()
