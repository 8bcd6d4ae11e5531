"""The database: engine set-up, transactions, and migrations. Dialect differences live here.

SQLite is a real dialect here, not a toy: WAL so readers never wait for the writer, a busy
timeout instead of instant "database is locked" errors, foreign keys on, and ``BEGIN IMMEDIATE``
for every transaction that writes, so two writers queue up at the start instead of failing
when the second tries to upgrade its read lock. PostgreSQL claims rows with
``FOR UPDATE SKIP LOCKED`` (see `kinema.store.tasks`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Final, Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    Select,
    create_engine,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite as sqlite_dialect
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
_IMMEDIATE: Final = "kinema_immediate"
_STATEMENT_READS: Final = "kinema_statement_reads"
SQLITE_BUSY_TIMEOUT_MS: Final = 10_000


def normalise_url(url: str) -> URL:
    """Accept the URLs people write (``postgresql://``) and pick the driver we ship (psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class Row(Protocol):
    """A row read by column name: SQLAlchemy's `RowMapping`, or the driver's own row."""

    def __getitem__(self, name: str, /) -> Any: ...


class Database:
    """One engine per process and database; hands out read and write transactions."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        #: SQLite's writers of this process queue here (see `write`).
        self._sqlite_turn = threading.Lock() if self.is_sqlite else None
        self._direct: _DirectReads | None = None
        self._at_once: Connection | None = None
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=20)
            _configure_sqlite(self.engine)
            if database and database != ":memory:":
                self._direct = _DirectReads(database)
        else:
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads (a consistent snapshot on both dialects)."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def quick_read(self) -> Iterator[Connection]:
        """Reads where each statement may see its own snapshot (on SQLite, no BEGIN at all).

        For the hot read paths (a key, then a task): each row is read whole and consistent,
        and skipping the transaction's BEGIN saves a round through the driver per request.
        """
        with self.engine.connect() as connection:
            connection = connection.execution_options(**{_STATEMENT_READS: True})
            with connection.begin():
                yield connection

    def first(self, statement: Select[Any], params: Mapping[str, object]) -> Row | None:
        """The first row of a prebuilt select, read at the least cost the database allows.

        For the paths clients hammer (polling a task). On a SQLite file the statement goes
        straight to the driver, compiled once, on a read-only connection this thread keeps:
        no pool, no transaction, no per-call statement handling, and it sees the latest commit.
        Elsewhere it is one short read through SQLAlchemy.
        """
        if self._direct is not None:
            return self._direct.first(statement, params)
        with self.quick_read() as connection:
            return connection.execute(statement, params).mappings().first()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that writes; on SQLite it takes the write lock at once.

        SQLite has one writer at a time. Threads of this process queue for it on a lock, in
        order, rather than in SQLite's busy handler, which sleeps in growing steps even after
        the lock is free and gives a burst of writers a long tail.
        """
        with self._sqlite_turn or nullcontext(), self.engine.connect() as connection:
            connection = connection.execution_options(**{_IMMEDIATE: True})
            with connection.begin():
                yield connection

    @contextmanager
    def write_at_once(self) -> Iterator[Connection | None]:
        """A write transaction if one can start without waiting, else None (SQLite only).

        For code that must not block (the event loop): no waiting for this process's writers,
        nor for another process's, whose lock makes ``BEGIN`` fail at once instead of waiting
        out the busy timeout.
        """
        if self._sqlite_turn is None:
            raise TypeError("write_at_once is for SQLite")
        if not self._sqlite_turn.acquire(blocking=False):
            yield None
            return
        try:
            connection = self._at_once_connection()
            try:
                transaction = connection.begin()
            except OperationalError:  # another process holds the write lock
                connection.rollback()
                yield None
                return
            with transaction:
                yield connection
        finally:
            self._sqlite_turn.release()

    def _at_once_connection(self) -> Connection:
        """The connection kept for `write_at_once`: taken from the pool once, so that a pool
        lent out to threads never makes the caller wait, and with no busy timeout."""
        connection = self._at_once
        if connection is None or connection.closed or connection.invalidated:
            connection = self.engine.connect().execution_options(**{_IMMEDIATE: True})
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")
            self._at_once = connection
        return connection

    def dispose(self) -> None:
        if self._at_once is not None:
            self._at_once.close()
            self._at_once = None
        if self._direct is not None:
            self._direct.close()
        self.engine.dispose()

    # Migrations.

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["engine"] = self.engine
        return config

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        command.upgrade(self.alembic_config(), "head")

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


def run(connection: Connection, statement: Executable, params: Mapping[str, object]) -> int:
    """Run a prebuilt insert, update or delete in `connection`'s transaction; the rows it changed.

    For the statements every request runs (createTask's). On SQLite the statement goes straight
    to the driver, compiled once, skipping SQLAlchemy's per-call statement handling, which
    costs twice what SQLite takes to run it. Elsewhere it is an ordinary `Connection.execute`.
    """
    if connection.dialect.name != "sqlite":
        result: CursorResult[Any] = connection.execute(statement, params)
        return result.rowcount
    sql, values = _SQLITE.bind(statement, params)
    driver = connection.connection.driver_connection
    assert driver is not None
    return int(driver.execute(sql, values).rowcount)


class _Statements:
    """Prebuilt statements compiled once for SQLite's driver, with their parameters in order."""

    def __init__(self) -> None:
        self._dialect = sqlite_dialect()
        self._compiled: dict[Executable, tuple[str, tuple[str, ...], dict[str, object]]] = {}

    def bind(self, statement: Executable, params: Mapping[str, object]) -> tuple[str, list[object]]:
        found = self._compiled.get(statement)
        if found is None:
            compiled = statement.compile(dialect=self._dialect)  # type: ignore[attr-defined]
            constants = {name: bind.effective_value for name, bind in compiled.binds.items()}
            found = (compiled.string, tuple(compiled.positiontup or ()), constants)
            self._compiled[statement] = found
        sql, names, constants = found
        # Values go to the driver as they are: the tables hold plain numbers and text.
        return sql, [params[name] if name in params else constants[name] for name in names]


_SQLITE: Final = _Statements()


class _DirectReads:
    """Reads on a SQLite file through the driver alone, one read-only connection per thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def first(self, statement: Select[Any], params: Mapping[str, object]) -> sqlite3.Row | None:
        sql, values = _SQLITE.bind(statement, params)
        row: sqlite3.Row | None = self._connection().execute(sql, values).fetchone()
        return row

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit: each statement reads the latest commit; closed from any thread.
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA query_only=ON")
            with self._lock:
                self._opened.append(connection)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of the driver's own
        # deferred BEGIN, so write transactions can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(_IMMEDIATE, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get(_STATEMENT_READS, False):
            connection.exec_driver_sql("BEGIN")
