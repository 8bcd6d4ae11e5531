"""A clock the test moves by hand."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """Unix milliseconds that only change when the test says so."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = start_ms if start_ms is not None else time.time_ns() // 1_000_000
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, milliseconds: int) -> None:
        with self._lock:
            self._now += milliseconds


DAY_MS = 86_400_000
