"""Everything that differs between SQLite and PostgreSQL, one class each, chosen once at start-up.

SQLite is a real dialect here, not a toy: WAL so readers never wait for the writer, a busy
timeout instead of instant "database is locked" errors, foreign keys on, and ``BEGIN IMMEDIATE``
for every transaction that writes, so two writers queue up at the start instead of failing when
the second tries to upgrade its read lock. Its one writer at a time is also what serialises
claims, reaps and rate-gate turns, so it needs no row locks. Short statements on a local file
take microseconds, so the event loop runs them itself (`runs_on_loop`).

PostgreSQL runs many writers at once: claims and reaps lock the rows they take with
``FOR UPDATE SKIP LOCKED``, named critical sections take an advisory lock, and everything goes
through the network, so the event loop hands it to a thread. Its ``NOTIFY`` tells workers in
every process the moment work appears (`announce`; see `kinema.store.notices`); SQLite's workers
all run in the processes that create their work, so an in-process signal does.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Executable,
    Insert,
    Select,
    Table,
    create_engine,
    event,
    exc,
    func,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from kinema.domain.errors import StorageFull, Unavailable
from kinema.store.notices import Listener

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
#: Idle read-only connections kept for `Database.first` on a SQLite file; more are closed.
DIRECT_READS_KEPT: Final = 4
_IMMEDIATE: Final = "kinema_immediate"
_STATEMENT_READS: Final = "kinema_statement_reads"

#: A row read by column name, with the same Python values on every dialect.
Row = Mapping[str, Any]


class Dialect(ABC):
    """What the rest of the store asks of a database that SQL alone cannot say the same way."""

    name: str
    #: Whether short statements may run on the event loop (they never wait on a network).
    runs_on_loop: bool

    @abstractmethod
    def create_engine(self, url: URL, pool_size: int) -> Engine: ...

    def write_options(self) -> dict[str, object]:
        """Execution options of a connection that will write."""
        return {}

    def read_options(self) -> dict[str, object]:
        """Execution options of a connection whose statements may each read their own snapshot."""
        return {}

    @abstractmethod
    def lock_rows(self, query: Select[Any], *of: Table) -> Select[Any]:
        """`query` taking the rows it selects for this transaction, skipping those others hold."""

    @staticmethod
    @abstractmethod
    def serialise(connection: Connection, name: str) -> None:
        """Hold the named critical section until `connection`'s transaction ends."""

    @staticmethod
    @abstractmethod
    def follow_index_order(connection: Connection) -> None:
        """Have the rest of `connection`'s transaction read rows in an index's order where one
        gives the order asked for, rather than gather and sort them, whatever the statistics say."""

    @abstractmethod
    def insert_or_ignore(self, table: Table) -> Insert:
        """An insert that does nothing when a row with the same key already exists."""

    @staticmethod
    @abstractmethod
    def announce(connection: Connection, channel: str, payload: str = "") -> None:
        """Tell every listener on `channel` (with `payload`), once `connection`'s transaction
        commits."""

    @staticmethod
    def notice(channel: str, payload: str) -> ColumnElement[Any] | None:
        """`announce` as an expression, for a statement to return with its row: the notice is
        sent for each row returned, at no round trip of its own; None where nothing is sent."""
        return None

    def listener(self, url: URL, channel: str, on_notice: Callable[[str], None]) -> Listener | None:
        """A listener (not started) for what `announce` sends, or None where nothing is sent."""
        return None

    @property
    def reads_directly(self) -> bool:
        """Whether `first` reads on the driver, quicker than a read through SQLAlchemy."""
        return False

    def first(self, statement: Select[Any], params: Mapping[str, object]) -> Row | None:
        """The first row of a prebuilt select, read on the driver (see `reads_directly`)."""
        raise TypeError(f"{self.name} reads through SQLAlchemy")

    @contextmanager
    def write_at_once(self, engine: Engine) -> Iterator[Connection | None]:
        """A write transaction if one can start without waiting, else None."""
        raise TypeError(f"{self.name} has no writing at once")
        yield None  # pragma: no cover

    @abstractmethod
    def failure(self, error: BaseException) -> Unavailable | None:
        """What an error of the driver means for the caller, when it is the database being
        busy, away or full rather than a mistake of ours; None otherwise."""

    def close(self) -> None:  # noqa: B027 - most dialects keep nothing beside the pool
        """Let go of what the dialect keeps beside the engine's pool."""


class SQLite(Dialect):
    name = "sqlite"
    runs_on_loop = True

    def __init__(self, url: URL, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
        self.busy_timeout_ms = busy_timeout_ms
        database = url.database
        self._file = database if database and database != ":memory:" else None
        if self._file is not None:
            Path(self._file).parent.mkdir(parents=True, exist_ok=True)
        #: SQLite's writers of this process queue here (see `Database.write`).
        self.turn = threading.Lock()
        self._direct = _DirectReads(self._file, busy_timeout_ms) if self._file is not None else None
        self._at_once: Connection | None = None

    def create_engine(self, url: URL, pool_size: int) -> Engine:
        engine = create_engine(url, pool_size=pool_size, max_overflow=20)
        _configure_sqlite(engine, self.busy_timeout_ms)
        return engine

    def write_options(self) -> dict[str, object]:
        return {_IMMEDIATE: True}

    def read_options(self) -> dict[str, object]:
        return {_STATEMENT_READS: True}

    def lock_rows(self, query: Select[Any], *of: Table) -> Select[Any]:
        return query  # the transaction holds the database's one write lock already

    @staticmethod
    def serialise(connection: Connection, name: str) -> None:
        pass  # likewise

    @staticmethod
    def follow_index_order(connection: Connection) -> None:
        pass  # without statistics (none are gathered) SQLite walks the index an ORDER BY names

    @staticmethod
    def announce(connection: Connection, channel: str, payload: str = "") -> None:
        pass  # none to send: a worker in another process finds the work at its next poll (a read)

    def insert_or_ignore(self, table: Table) -> Insert:
        return sqlite.insert(table).on_conflict_do_nothing()

    def failure(self, error: BaseException) -> Unavailable | None:
        cause = getattr(error, "orig", error)
        if not isinstance(cause, sqlite3.OperationalError):
            return None
        text = str(cause).lower()
        if "locked" in text or "busy" in text:
            return Unavailable("the database is busy with another writer; try again in a moment")
        if "full" in text:
            return StorageFull("the database's disk is full; nothing was stored")
        if "unable to open" in text or "disk i/o" in text:
            return Unavailable("the database cannot be read right now", retry_after_s=5)
        return None

    @property
    def reads_directly(self) -> bool:
        return self._direct is not None

    def first(self, statement: Select[Any], params: Mapping[str, object]) -> Row | None:
        if self._direct is None:
            raise TypeError("a database in memory is read through SQLAlchemy")
        return self._direct.first(statement, params)

    @staticmethod
    def run(connection: Connection, statement: Executable, params: Mapping[str, object]) -> int:
        """A prebuilt insert, update or delete straight on the driver: the rows it changed."""
        prepared = _prepare(statement)
        driver = connection.connection.driver_connection
        assert driver is not None
        return int(driver.execute(prepared.sql, prepared.values(params)).rowcount)

    @contextmanager
    def write_at_once(self, engine: Engine) -> Iterator[Connection | None]:
        # No waiting for this process's writers, nor for another process's, whose lock makes
        # ``BEGIN`` fail at once instead of waiting out the busy timeout.
        if not self.turn.acquire(blocking=False):
            yield None
            return
        try:
            connection = self._at_once_connection(engine)
            try:
                transaction = connection.begin()
            except OperationalError:  # another process holds the write lock
                connection.rollback()
                yield None
                return
            with transaction:
                yield connection
        finally:
            self.turn.release()

    def _at_once_connection(self, engine: Engine) -> Connection:
        """The connection kept for `write_at_once`: taken from the pool once, so that a pool
        lent out to threads never makes the caller wait, and with no busy timeout."""
        connection = self._at_once
        if connection is None or connection.closed or connection.invalidated:
            connection = engine.connect().execution_options(**self.write_options())
            driver = connection.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")
            self._at_once = connection
        return connection

    def close(self) -> None:
        if self._at_once is not None:
            self._at_once.close()
            self._at_once = None
        if self._direct is not None:
            self._direct.close()


class PostgreSQL(Dialect):
    name = "postgresql"
    runs_on_loop = False

    def create_engine(self, url: URL, pool_size: int) -> Engine:
        engine = create_engine(url, pool_size=pool_size, max_overflow=20)
        ping_after_idle(engine, PING_AFTER_IDLE_S)
        return engine

    def lock_rows(self, query: Select[Any], *of: Table) -> Select[Any]:
        return query.with_for_update(skip_locked=True, of=list(of) or None)

    @staticmethod
    def serialise(connection: Connection, name: str) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": zlib.crc32(name.encode())})

    @staticmethod
    def follow_index_order(connection: Connection) -> None:
        # The planner's statistics lag a burst of new rows: believing a handful match, it
        # gathers them all, checks each, then sorts (12 ms for 3,000 queued tasks), where the
        # index's order finds the first in a tenth of a millisecond.
        connection.exec_driver_sql("SET LOCAL enable_sort = off")

    @staticmethod
    def announce(connection: Connection, channel: str, payload: str = "") -> None:
        # Several alike in one transaction are folded into one by the server.
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
        )

    @staticmethod
    def notice(channel: str, payload: str) -> ColumnElement[Any] | None:
        return func.pg_notify(channel, payload)

    def listener(self, url: URL, channel: str, on_notice: Callable[[str], None]) -> Listener | None:
        return Listener(url, channel, on_notice)

    def insert_or_ignore(self, table: Table) -> Insert:
        return postgresql.insert(table).on_conflict_do_nothing()

    def failure(self, error: BaseException) -> Unavailable | None:
        cause = getattr(error, "orig", None)
        state = str(getattr(cause, "sqlstate", "") or "")
        if state == "53100":  # disk_full
            return StorageFull("the database's disk is full; nothing was stored")
        if state.startswith(("08", "53", "57P")):  # connection, resources, shutting down
            return Unavailable(
                "the database is unreachable or overloaded; try again shortly", retry_after_s=5
            )
        if isinstance(error, OperationalError) and getattr(error, "connection_invalidated", False):
            return Unavailable("the database connection was lost; try again shortly", 5)
        return None


def upsert(connection: Connection, table: Table, key: Sequence[str], values: Mapping[str, Any]) -> None:
    """Insert a row, or update the one with the same `key` columns: one statement, so that two
    writers of the same key at once never collide (both databases spell it the same)."""
    insert_into = sqlite.insert if connection.dialect.name == SQLite.name else postgresql.insert
    statement = insert_into(table).values(**values)
    changed = {name: value for name, value in values.items() if name not in key}
    connection.execute(statement.on_conflict_do_update(index_elements=list(key), set_=changed))


def serialise(connection: Connection, name: str) -> None:
    """`Dialect.serialise` for the database `connection` belongs to."""
    _BY_NAME[connection.dialect.name].serialise(connection, name)


def announce(connection: Connection, channel: str, payload: str = "") -> None:
    """`Dialect.announce` for the database `connection` belongs to."""
    _BY_NAME[connection.dialect.name].announce(connection, channel, payload)


def notice(connection: Connection, channel: str, payload: str) -> ColumnElement[Any] | None:
    """`Dialect.notice` for the database `connection` belongs to."""
    return _BY_NAME[connection.dialect.name].notice(channel, payload)


def dialect_for(url: URL, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Dialect:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return SQLite(url, busy_timeout_ms)
    if backend == "postgresql":
        return PostgreSQL()
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


_BY_NAME: Final[dict[str, type[Dialect]]] = {SQLite.name: SQLite, PostgreSQL.name: PostgreSQL}

# SQLite's fast paths: statements compiled once, values converted as SQLAlchemy would.

_SQLITE_DIALECT: Final = SQLiteDialect_pysqlite()
_Convert = Callable[[Any], Any]


class _Prepared:
    """A prebuilt statement compiled for SQLite's driver, with its parameters in order and the
    conversions SQLAlchemy's types make, so the driver's rows hold the same values."""

    def __init__(self, statement: Executable) -> None:
        compiled = statement.compile(dialect=_SQLITE_DIALECT)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._constants = {name: bind.effective_value for name, bind in compiled.binds.items()}
        self._binds: dict[str, _Convert] = {}
        for name, bind in compiled.binds.items():
            convert = bind.type.dialect_impl(_SQLITE_DIALECT).bind_processor(_SQLITE_DIALECT)
            if convert is not None:
                self._binds[name] = convert
        self.columns: tuple[str, ...] = ()
        self._results: tuple[tuple[int, _Convert], ...] = ()
        if isinstance(statement, Select):
            selected = list(statement.selected_columns)
            self.columns = tuple(str(column.key) for column in selected)
            results = []
            for index, column in enumerate(selected):
                convert = column.type.dialect_impl(_SQLITE_DIALECT).result_processor(_SQLITE_DIALECT, None)
                if convert is not None:
                    results.append((index, convert))
            self._results = tuple(results)

    def values(self, params: Mapping[str, object]) -> list[object]:
        values = [params[name] if name in params else self._constants[name] for name in self._names]
        for index, name in enumerate(self._names):
            convert = self._binds.get(name)
            if convert is not None:
                values[index] = convert(values[index])
        return values

    def row(self, values: Sequence[Any]) -> Row:
        if self._results:
            values = list(values)
            for index, convert in self._results:
                values[index] = convert(values[index])
        return dict(zip(self.columns, values, strict=True))


_PREPARED: dict[Executable, _Prepared] = {}


def _prepare(statement: Executable) -> _Prepared:
    found = _PREPARED.get(statement)
    if found is None:
        found = _PREPARED[statement] = _Prepared(statement)
    return found


class _DirectReads:
    """Reads on a SQLite file through the driver alone, on read-only connections lent per read.

    Idle connections wait in a queue: a read borrows one (or opens one when none is idle) and
    gives it back, and beyond `keep` idle ones the extra is closed. So the connections open are
    those reading at this moment plus at most `keep`, however many threads come and go (a
    connection per thread would stay open after its thread is gone). Borrowing never waits:
    the queue's ends are atomic, with no lock between the caller and its read.
    """

    def __init__(self, path: str, busy_timeout_ms: int, *, keep: int = DIRECT_READS_KEPT) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._keep = keep
        self._idle: deque[sqlite3.Connection] = deque()
        self._closed = False

    def first(self, statement: Select[Any], params: Mapping[str, object]) -> Row | None:
        prepared = _prepare(statement)
        connection = self._borrow()
        try:
            found = connection.execute(prepared.sql, prepared.values(params)).fetchone()
        finally:
            self._give_back(connection)
        return None if found is None else prepared.row(found)

    @property
    def idle(self) -> int:
        """Connections open and waiting for a read."""
        return len(self._idle)

    def _borrow(self) -> sqlite3.Connection:
        try:
            return self._idle.pop()
        except IndexError:
            pass
        # Autocommit: each statement reads the latest commit; closed from any thread.
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        connection.execute("PRAGMA query_only=ON")
        return connection

    def _give_back(self, connection: sqlite3.Connection) -> None:
        if self._closed:
            connection.close()
            return
        self._idle.append(connection)
        if self._closed:  # closed while this read ran
            self.close()
            return
        # Readers giving back at once may all see room; whoever sees too many closes one.
        while len(self._idle) > self._keep:
            try:
                extra = self._idle.popleft()
            except IndexError:
                break
            extra.close()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return
            connection.close()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of the driver's own
        # deferred BEGIN, so write transactions can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
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


#: A pooled PostgreSQL connection idle this long is pinged before it is used again.
PING_AFTER_IDLE_S: Final = 0.25
_IDLE_SINCE: Final = "kinema_idle_since"


def ping_after_idle(engine: Engine, idle_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
    """Check a pooled connection with a round trip before use, as ``pool_pre_ping`` does, but
    only once it has been idle for `idle_s`: a server that restarted or cut it off meanwhile
    costs a new connection, not a failed statement. A connection given back moments ago (a
    worker going through a backlog, an API replica under load) is used at once: the ping would
    be one round trip in four of a worker's finish."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and monotonic() - idle_since < idle_s:
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # The pool drops every connection made before now and checks out a new one.
                raise exc.InvalidatePoolError(str(error)) from error
            raise
