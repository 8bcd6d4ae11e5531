"""Short write transactions for code on the event loop, many to a commit on SQLite.

SQLite has one writer at a time, and each commit costs far more than the few statements a
request writes. `LoopWriter` gathers the writes that the loop's coroutines ask for in one turn
of the loop and runs them in one transaction, each in a savepoint (a write that fails undoes
only itself), with one commit: a burst of requests pays for one commit between them.

The batch runs on the loop itself when the database's write lock is free at that moment,
which is nearly always: a few statements on a local file take less time than handing them to a
thread, and a thread would fight the loop for the GIL on each statement. When the lock is
held (by a worker of this process or by another process), the batch goes to a thread of the
writer's own, which waits for the lock; the loop never waits. Each caller's result arrives
only after the commit, so an answer never reports what a crash could still undo.

On PostgreSQL every write is a transaction of its own in the thread pool: the server runs
many at once, and its row locks should be held no longer than one request's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from anyio import to_thread
from sqlalchemy import Connection

from kinema.store.database import Database

log = logging.getLogger("kinema.store")

T = TypeVar("T")

MAX_BATCH = 64
"""Writes in one transaction at most, so that a long queue still commits often."""


@dataclass(frozen=True, slots=True)
class _Write(Generic[T]):
    work: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


_Outcome = tuple[bool, Any]  # (succeeded, result or exception)


class LoopWriter:
    """Runs write transactions for coroutines; see the module's notes."""

    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._gathered: list[_Write[Any]] = []  # this turn of the loop's writes
        self._pending: deque[_Write[Any]] = deque()  # for the thread
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def write(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in a write transaction; its result once committed, or what it raised.

        `work` must only touch the database: on SQLite it shares the transaction with other
        writes, and anything it does outside (files, signals) would outlive a rollback.
        """
        if not self._db.dialect.runs_on_loop:
            return await to_thread.run_sync(self._alone, work)
        if self._closed:
            raise RuntimeError("the writer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._gathered:
            loop.call_soon(self._flush)
        self._gathered.append(_Write(work, future, loop))
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()

    def _flush(self) -> None:
        """Run this turn's writes on the loop if the write lock is free, else in the thread."""
        gathered, self._gathered = self._gathered, []
        live = [write for write in gathered if not write.future.cancelled()]
        # A transaction at most `max_batch` writes long, so that none holds the loop for long.
        for start in range(0, len(live), self._max_batch):
            self._flush_batch(live[start : start + self._max_batch])

    def _flush_batch(self, live: list[_Write[Any]]) -> None:
        try:
            with self._db.write_at_once() as connection:
                if connection is not None:
                    outcomes = _run_each(connection, live)
        except Exception as error:  # BEGIN or COMMIT failed: nothing of the batch was written
            log.warning("a batch of %d writes failed to commit: %s", len(live), error)
            outcomes = [(False, error)] * len(live)
        else:
            if connection is None:
                self._to_thread(live)
                return
        _settle_on_loop([(write.future, outcome) for write, outcome in zip(live, outcomes, strict=True)])

    def _to_thread(self, live: list[_Write[Any]]) -> None:
        with self._lock:
            self._pending.extend(live)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kinema-loop-writer", daemon=True)
                self._thread.start()
        self._wake.set()

    def _alone(self, work: Callable[[Connection], T]) -> T:
        with self._db.write() as connection:
            return work(connection)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                batch = [self._pending.popleft() for _ in range(min(self._max_batch, len(self._pending)))]
                closed = self._closed
                if not self._pending and not closed:
                    self._wake.clear()
            # A write whose caller gave up before it started is dropped.
            live = [write for write in batch if not write.future.cancelled()]
            if live:
                self._settle(live, self._run_batch(live))
            elif closed and not batch:
                return

    def _run_batch(self, live: list[_Write[Any]]) -> list[_Outcome]:
        try:
            with self._db.write() as connection:
                return _run_each(connection, live)
        except Exception as error:  # BEGIN or COMMIT failed: nothing of the batch was written
            log.warning("a batch of %d writes failed to commit: %s", len(live), error)
            return [(False, error)] * len(live)

    def _settle(self, live: list[_Write[Any]], outcomes: list[_Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], _Outcome]]] = {}
        for write, outcome in zip(live, outcomes, strict=True):
            by_loop.setdefault(write.loop, []).append((write.future, outcome))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle_on_loop, settled)


def _run_each(connection: Connection, live: list[_Write[Any]]) -> list[_Outcome]:
    """Each write in a savepoint of `connection`'s transaction; what each returned or raised."""
    # Savepoints straight on the driver: SQLAlchemy's cost three times as much.
    driver = connection.connection.driver_connection
    assert driver is not None
    outcomes: list[_Outcome] = []
    for write in live:
        driver.execute("SAVEPOINT kinema_write")
        try:
            outcomes.append((True, write.work(connection)))
        except Exception as error:
            driver.execute("ROLLBACK TO kinema_write")
            outcomes.append((False, error))
        driver.execute("RELEASE kinema_write")
    return outcomes


def _settle_on_loop(settled: list[tuple[asyncio.Future[Any], _Outcome]]) -> None:
    for future, (succeeded, value) in settled:
        if future.done():
            continue
        if succeeded:
            future.set_result(value)
        else:
            future.set_exception(value)
