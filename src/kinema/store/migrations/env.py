"""Alembic's entry point: runs migrations on the engine that `Database.alembic_config` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from kinema.store.schema import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through kinema.store.database.Database.migrate (kinema migrate)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
