"""The database: one engine per process, its transactions, and migrations.

What differs between SQLite and PostgreSQL lives in `kinema.store.dialects`, one class each,
chosen once here from the URL.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Executable, Select, make_url, text
from sqlalchemy.engine import URL

from kinema.domain.errors import Unavailable
from kinema.store.dialects import SQLITE_BUSY_TIMEOUT_MS, Dialect, Row, SQLite, dialect_for
from kinema.store.notices import Listener

__all__ = ["Connection", "Database", "Row", "Schema", "normalise_url", "run"]

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
#: The critical section a migration holds, so that concurrent starts never race.
MIGRATION_LOCK: Final = "kinema-schema-migration"


def normalise_url(url: str) -> URL:
    """Accept the URLs people write (``postgresql://``) and pick the driver we ship (psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class Schema(enum.Enum):
    """Where a database's schema stands against the migrations this code knows."""

    EMPTY = "empty"  #: Nothing migrated yet: a new database.
    BEHIND = "behind"  #: An older revision: `kinema migrate` brings it up to date.
    CURRENT = "current"
    UNKNOWN = "unknown"  #: A revision this code does not know: a newer Kinema migrated it.


class Database:
    """One engine per process and database; hands out read and write transactions.

    What differs between SQLite and PostgreSQL is `dialect`'s (`kinema.store.dialects`).
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
    ) -> None:
        self.url = normalise_url(url)
        self.dialect: Dialect = dialect_for(self.url, busy_timeout_ms)
        #: Why the database last failed to serve a call, and when (for `/readyz`, `/metrics`).
        self.troubles = Troubles()
        self.engine = self.dialect.create_engine(self.url, pool_size)
        self._sqlite_turn = self.dialect.turn if isinstance(self.dialect, SQLite) else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads (a consistent snapshot on both dialects)."""
        with self.failures_explained(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def failures_explained(self) -> Iterator[None]:
        """Turn the database being busy, away or full into `Unavailable` (or `StorageFull`),
        which says so in words and when to try again; other errors pass as they are."""
        try:
            yield
        except Exception as error:
            explained = self.explain(error)
            if explained is None:
                raise
            raise explained from error

    def explain(self, error: BaseException) -> Unavailable | None:
        """`error` as the caller should see it, if it is the database failing (and noted)."""
        if isinstance(error, Unavailable):
            return error
        explained = self.dialect.failure(error)
        if explained is not None:
            self.troubles.note(explained)
        return explained

    def first(self, statement: Select[Any], params: Mapping[str, object]) -> Row | None:
        """The first row of a prebuilt select, read at the least cost the database allows.

        For the paths clients hammer (polling a task). On a SQLite file the statement goes
        straight to the driver, compiled once, on a read-only connection borrowed from the few
        kept idle: no pool, no transaction, no per-call statement handling, and it sees the
        latest commit.
        Elsewhere it is one short read through SQLAlchemy. The values are the same either way.
        """
        # `failures_explained` spelled out: a context manager costs a quarter of the read.
        try:
            if self.dialect.reads_directly:
                return self.dialect.first(statement, params)
            with self.engine.connect() as connection:
                connection = connection.execution_options(**self.dialect.read_options())
                with connection.begin():
                    found = connection.execute(statement, params).mappings().first()
            return None if found is None else dict(found)
        except Exception as error:
            explained = self.explain(error)
            if explained is None:
                raise
            raise explained from error

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes; on SQLite it takes the write lock at once.

        SQLite has one writer at a time. Threads of this process queue for it on a lock, in
        order, rather than in SQLite's busy handler, which sleeps in growing steps even after
        the lock is free and gives a burst of writers a long tail.
        """
        with (
            self.failures_explained(),
            self._sqlite_turn or nullcontext(),
            self.engine.connect() as connection,
        ):
            connection = connection.execution_options(**self.dialect.write_options())
            with connection.begin():
                yield connection

    @contextmanager
    def write_at_once(self) -> Iterator[Connection | None]:
        """A write transaction if one can start without waiting, else None (SQLite only).

        For code that must not block (the event loop).
        """
        with self.failures_explained(), self.dialect.write_at_once(self.engine) as connection:
            yield connection

    def listen(self, channel: str, on_notice: Callable[[str], None]) -> Listener | None:
        """A listener (not started) calling `on_notice` with each announcement's payload on
        `channel`, from any process; None on a database that has no notifications (SQLite)."""
        return self.dialect.listener(self.url, channel, on_notice)

    def dispose(self) -> None:
        self.dialect.close()
        self.engine.dispose()

    # Migrations.

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["database"] = self
        return config

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent; concurrent runs take turns)."""
        command.upgrade(self.alembic_config(), "head")

    def schema(self) -> Schema:
        """Where the schema stands against the migrations this code knows."""
        current = self.current_revision()
        if current is None:
            return Schema.EMPTY
        if current == self.head_revision():
            return Schema.CURRENT
        known = {
            script.revision for script in ScriptDirectory.from_config(self.alembic_config()).walk_revisions()
        }
        return Schema.BEHIND if current in known else Schema.UNKNOWN

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def is_at_head(self) -> bool:
        return self.current_revision() == self.head_revision()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))


class Troubles:
    """The database's recent failures: how many of each kind, and the last one."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._last: tuple[float, str] | None = None

    def note(self, error: Unavailable) -> None:
        with self._lock:
            self.counts[type(error).__name__] += 1
            self._last = (self._monotonic(), error.message)

    def recent(self, within_s: float = 60.0) -> str | None:
        """The last failure's words, if it happened within `within_s` seconds."""
        with self._lock:
            last = self._last
        if last is None or self._monotonic() - last[0] > within_s:
            return None
        return f"{last[1]} ({self._monotonic() - last[0]:.0f} s ago)"


def run(connection: Connection, statement: Executable, params: Mapping[str, object]) -> int:
    """Run a prebuilt insert, update or delete in `connection`'s transaction; the rows it changed.

    For the statements every request runs (createTask's). On SQLite the statement goes straight
    to the driver, compiled once, skipping SQLAlchemy's per-call statement handling, which
    costs twice what SQLite takes to run it. Elsewhere it is an ordinary `Connection.execute`.
    """
    if connection.dialect.name == SQLite.name:
        return SQLite.run(connection, statement, params)
    result: CursorResult[Any] = connection.execute(statement, params)
    return result.rowcount
