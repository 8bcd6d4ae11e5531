"""A rate limit shared by every process on the same database: "at most N calls per window".

Remote engines pass each upstream request through one (MiniMax allows 5 video requests a
minute per account), so any number of workers, on any number of machines, stay under it
together. The count lives in ``rate_events``; each turn is one short write transaction, which
the dialect serialises (SQLite's write lock, a PostgreSQL advisory lock).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from sqlalchemy import delete, func, insert, select

from kinema.domain.clock import Clock
from kinema.store.database import Database
from kinema.store.schema import rate_events


class SqlRateGate:
    def __init__(self, db: Database, name: str, limit: int, window_ms: int, clock: Clock) -> None:
        if limit <= 0 or window_ms <= 0:
            raise ValueError("a rate gate needs a positive limit and window")
        self.db = db
        self.name = name
        self.limit = limit
        self.window_ms = window_ms
        self.clock = clock

    def try_turn(self) -> int:
        """Take a turn now and answer 0, or answer how many ms until one may be free."""
        now = self.clock()
        since = now - self.window_ms
        with self.db.write() as connection:
            self.db.dialect.serialise(connection, f"kinema.gate:{self.name}")
            connection.execute(
                delete(rate_events).where(rate_events.c.name == self.name, rate_events.c.at <= since)
            )
            used, oldest = connection.execute(
                select(func.count(), func.min(rate_events.c.at)).where(rate_events.c.name == self.name)
            ).one()
            if used < self.limit:
                connection.execute(insert(rate_events).values(name=self.name, at=now))
                return 0
            return max(1, int(oldest) + self.window_ms - now)

    def wait_turn(self, should_stop: Callable[[], bool], sleep: Callable[[float], bool]) -> bool:
        """Wait until a turn is taken (True), or until `should_stop` says so (False).

        `sleep(seconds)` waits and answers True if woken to stop, like `Event.wait`.
        """
        while not should_stop():
            wait_ms = self.try_turn()
            if wait_ms == 0:
                return True
            if sleep(min(wait_ms, 1000) / 1000):
                return False
        return False


class LocalRateGate:
    """The same limit within one process, for `kinema render` where no database is involved."""

    def __init__(self, limit: int, window_ms: int, clock: Clock) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.clock = clock
        self._turns: deque[int] = deque()
        self._lock = threading.Lock()

    def try_turn(self) -> int:
        now = self.clock()
        with self._lock:
            while self._turns and self._turns[0] <= now - self.window_ms:
                self._turns.popleft()
            if len(self._turns) < self.limit:
                self._turns.append(now)
                return 0
            return max(1, self._turns[0] + self.window_ms - now)

    def wait_turn(self, should_stop: Callable[[], bool], sleep: Callable[[float], bool]) -> bool:
        while not should_stop():
            wait_ms = self.try_turn()
            if wait_ms == 0:
                return True
            if sleep(min(wait_ms, 1000) / 1000):
                return False
        return False
