"""In-process signals between the API and the workers of one ``kinema serve``.

They only make things faster: a worker in another process learns the same facts from the
database at its next poll or heartbeat.
"""

from __future__ import annotations

import threading


class Wakeup:
    """Wakes idle workers when a task becomes ready, instead of waiting for their next poll."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    def notify(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, timeout_s: float, seen: int) -> int:
        """Wait until a notification newer than `seen`, or the timeout; answers the newest."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation != seen, timeout=timeout_s)
            return self._generation

    @property
    def generation(self) -> int:
        with self._condition:
            return self._generation


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
