"""Databases for the benchmarks: a SQLite file in the run's folder, or a fresh PostgreSQL one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kinema.store.database import normalise_url

DIALECTS = ("sqlite", "postgres")


def postgres_server(purpose: str) -> str:
    """The PostgreSQL server named by ``KINEMA_<PURPOSE>_POSTGRES_URL``, else the tests' one."""
    url = os.environ.get(f"KINEMA_{purpose.upper()}_POSTGRES_URL") or os.environ.get(
        "KINEMA_TEST_POSTGRES_URL"
    )
    if not url:
        raise SystemExit(
            f"PostgreSQL needs KINEMA_{purpose.upper()}_POSTGRES_URL (postgresql://user@host/db)"
        )
    return url


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on `server_url`, dropped afterwards."""
    admin = create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"kinema_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def run_database(kind: str, folder: Path, purpose: str) -> Iterator[str]:
    """A database of `kind` for one run: a file in `folder`, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'kinema.db'}"
        return
    with postgres_database(postgres_server(purpose)) as url:
        yield url
