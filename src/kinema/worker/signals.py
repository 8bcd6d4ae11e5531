"""In-process signals between the API and the workers of one ``kinema serve``.

They only make things faster: a worker in another process learns the same facts from the
database at its next poll or heartbeat.
"""

from __future__ import annotations

import threading
from collections import Counter


class Wakeup:
    """Wakes idle workers when a task becomes ready, instead of waiting for their next poll.

    Each waiting loop waits for one kind of work (a stage's name); a notification names the
    kinds it concerns, or none for every kind.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._to_all = 0
        self._to_kind: Counter[str] = Counter()

    def notify(self, *kinds: str) -> None:
        with self._condition:
            if kinds:
                self._to_kind.update(kinds)
            else:
                self._to_all += 1
            self._condition.notify_all()

    def wait(self, timeout_s: float, seen: int, kind: str = "") -> int:
        """Wait until a notification for `kind` newer than `seen`, or the timeout; answers the
        newest (`generation`)."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation(kind) != seen, timeout=timeout_s)
            return self._generation(kind)

    def generation(self, kind: str = "") -> int:
        """How many notifications for `kind` so far."""
        with self._condition:
            return self._generation(kind)

    def _generation(self, kind: str) -> int:
        return self._to_all + self._to_kind[kind]


class CancelSignals:
    """Tasks running in this process, each with the event that stops it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}

    def register(self, task_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[task_id] = event
        return event

    def unregister(self, task_id: str) -> None:
        with self._lock:
            self._events.pop(task_id, None)

    def cancel(self, task_id: str) -> bool:
        """Stop the task if it runs here; False when it does not."""
        with self._lock:
            event = self._events.get(task_id)
        if event is None:
            return False
        event.set()
        return True
