"""The one way async code reaches the database, deciding alone between the event loop and a thread.

On SQLite, a short read on a local file in WAL mode never waits for a lock and takes
microseconds, far less than the trip to a thread and back (and the fight for the GIL between
many threads), so it runs on the loop; writes go to the `LoopWriter`, which commits a turn's
writes together. On PostgreSQL everything waits on the network, so reads and writes run in
threads. Callers never know which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from anyio import to_thread

from kinema.store.database import Connection, Database
from kinema.store.writer import MAX_BATCH, LoopWriter

P = ParamSpec("P")
T = TypeVar("T")


class Gateway:
    def __init__(self, db: Database, *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self._writer = LoopWriter(db, max_batch=max_batch)

    async def read(self, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`read(*args, **kwargs)`, a short read (`Database.first`, or a `Database.read` of a
        few rows), where it costs least: on the loop for SQLite, in a thread otherwise."""
        if self.db.dialect.runs_on_loop:
            return read(*args, **kwargs)
        return await to_thread.run_sync(lambda: read(*args, **kwargs))

    async def write(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` in a write transaction; its result once committed, or what it raised.

        `work` must only touch the database: on SQLite it shares the transaction with other
        writes, and anything it does outside (files, signals) would outlive a rollback.
        """
        try:
            return await self._writer.write(work)
        except Exception as error:
            explained = self.db.explain(error)
            if explained is None:
                raise
            raise explained from error

    def close(self) -> None:
        """Finish the writes asked for, then stop."""
        self._writer.close()
