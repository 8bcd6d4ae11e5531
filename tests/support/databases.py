"""Real databases, one fresh per test: a SQLite file, or a PostgreSQL copy of a migrated template.

PostgreSQL runs when ``KINEMA_TEST_POSTGRES_URL`` names a server (``.ci/run`` sets it); without
it those tests skip and say why.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from kinema.store.database import Database, normalise_url
from kinema.store.schema import metadata

POSTGRES_ENV = "KINEMA_TEST_POSTGRES_URL"
DIALECTS = ("sqlite", "postgres")


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def skip_without_postgres() -> None:
    if postgres_url() is None:
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (for example postgresql://postgres@127.0.0.1:5432/test)"
        )


class PostgresTemplates:
    """Migrates a template database once per session; each test gets an empty, migrated one.

    Copying the template costs a few hundred milliseconds, emptying a used database a few: a
    test's database is emptied and kept for the next test, under a new name, so that nothing
    the last test left running can reach it. One that cannot be emptied cleanly is dropped.
    """

    def __init__(self, url: str) -> None:
        self.server = normalise_url(url)
        self._admin = create_engine(self.server, isolation_level="AUTOCOMMIT", pool_size=1)
        self._ready = False
        # One template per test session, so that sessions running side by side never share one.
        self._template = f"kinema_template_{secrets.token_hex(4)}"
        self._spares: list[str] = []
        self._head: str | None = None

    def _execute(self, statement: str) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(statement))

    def _prepare(self) -> None:
        if self._ready:
            return
        self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{self._template}"')
        template = Database(self.server.set(database=self._template).render_as_string(hide_password=False))
        template.migrate()
        self._head = template.head_revision()
        template.dispose()
        self._ready = True

    def _url(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    @contextmanager
    def database(self) -> Iterator[str]:
        self._prepare()
        if self._spares:
            name = self._spares.pop()
        else:
            name = f"kinema_test_{secrets.token_hex(6)}"
            self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        try:
            yield self._url(name)
        finally:
            self._recycle(name)

    def _recycle(self, name: str) -> None:
        """Empty the used database `name` for the next test, or drop it."""
        renamed = f"kinema_test_{secrets.token_hex(6)}"
        try:
            # Cut off whatever the test left connected, then rename: a thread or process
            # that outlived its test reconnects to a database that is no longer there.
            self._execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            self._execute(f'ALTER DATABASE "{name}" RENAME TO "{renamed}"')
        except DBAPIError:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        engine = create_engine(normalise_url(self._url(renamed)), poolclass=NullPool)
        try:
            with engine.begin() as connection:
                for table in reversed(metadata.sorted_tables):
                    connection.execute(table.delete())
                for table in metadata.sorted_tables:
                    if "id" in table.c and table.c.id.autoincrement is True:
                        connection.execute(
                            text("SELECT setval(pg_get_serial_sequence(:table, 'id'), 1, false)"),
                            {"table": table.name},
                        )
                connection.execute(
                    text("UPDATE alembic_version SET version_num = :head"), {"head": self._head}
                )
        except DBAPIError:
            engine.dispose()
            self._execute(f'DROP DATABASE IF EXISTS "{renamed}" WITH (FORCE)')
            return
        engine.dispose()
        self._spares.append(renamed)

    @contextmanager
    def empty_database(self) -> Iterator[str]:
        """A database with no schema at all, as a first start finds it."""
        name = f"kinema_test_{secrets.token_hex(6)}"
        self._execute(f'CREATE DATABASE "{name}"')
        try:
            yield self.server.set(database=name).render_as_string(hide_password=False)
        finally:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in self._spares:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if self._ready:
            self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)')
        self._admin.dispose()


@contextmanager
def fresh_database_url(dialect: str, folder: Path, templates: PostgresTemplates | None) -> Iterator[str]:
    """A migrated, empty database of `dialect` for one test."""
    if dialect == "sqlite":
        url = f"sqlite:///{folder / 'kinema.db'}"
        db = Database(url)
        db.migrate()
        db.dispose()
        yield url
        return
    skip_without_postgres()
    assert templates is not None
    with templates.database() as url:
        yield url


@contextmanager
def empty_database_url(dialect: str, folder: Path, templates: PostgresTemplates | None) -> Iterator[str]:
    """A database of `dialect` with no schema yet."""
    if dialect == "sqlite":
        yield f"sqlite:///{folder / 'kinema.db'}"
        return
    skip_without_postgres()
    assert templates is not None
    with templates.empty_database() as url:
        yield url


def server_url_of(url: str) -> str:
    return make_url(url).render_as_string(hide_password=False)
