"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kinema.store.database import Database
from kinema.store.schema import metadata


def test_migrated_schema_matches_the_declared_one(db: Database) -> None:
    assert db.is_at_head()
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_server_default": False})
        assert compare_metadata(context, metadata) == []


def test_migrating_again_changes_nothing(db: Database) -> None:
    head = db.current_revision()
    db.migrate()
    assert db.current_revision() == head
