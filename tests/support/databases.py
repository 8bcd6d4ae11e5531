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

from kinema.store.database import Database, normalise_url

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
    """Migrates a template database once per session; each test gets a fresh copy of it."""

    def __init__(self, url: str) -> None:
        self.server = normalise_url(url)
        self._admin = create_engine(self.server, isolation_level="AUTOCOMMIT", pool_size=1)
        self._ready = False
        # One template per test session, so that sessions running side by side never share one.
        self._template = f"kinema_template_{secrets.token_hex(4)}"

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
        template.dispose()
        self._ready = True

    @contextmanager
    def database(self) -> Iterator[str]:
        self._prepare()
        name = f"kinema_test_{secrets.token_hex(6)}"
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        try:
            yield self.server.set(database=name).render_as_string(hide_password=False)
        finally:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

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
