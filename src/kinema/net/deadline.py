"""The time one transfer may take in all, kept even against a server that sends a byte at a time.

httpx's timeouts bound each socket operation, not their sum: a server answering just inside the
read timeout, a header byte at a time, could hold a transfer open without end. So an alarm shuts
the connection down when the time is up, which wakes a read blocked in the fetching thread. It
shuts down a duplicate of the socket's descriptor, which the deadline owns: the connection's own
descriptor may be closed, and its number given to another socket, at any moment.

Time comes in as parameters: `Monotonic` reads it and `AlarmFactory` sets the alarm off, so tests
decide when a deadline passes instead of waiting for it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from types import TracebackType
from typing import Any, Final, Protocol

#: Seconds since an arbitrary start, never going back (`time.monotonic`).
Monotonic = Callable[[], float]

#: httpcore's trace event for a new TCP connection; its return value is the connection's stream.
_CONNECTION_OPENED: Final = "connection.connect_tcp.complete"


class Alarm(Protocol):
    """Calls its function once, some time after `start`, unless canceled first."""

    def start(self) -> None: ...

    def cancel(self) -> None: ...


#: Makes the alarm that calls a function once the given seconds are up.
AlarmFactory = Callable[[float, Callable[[], None]], Alarm]


def thread_alarm(seconds: float, function: Callable[[], None]) -> Alarm:
    """An alarm on a daemon timer thread (`threading.Timer`)."""
    timer = threading.Timer(seconds, function)
    timer.daemon = True
    return timer


class Deadline:
    """The end of one transfer: `expired` once the time is up, and its connection shut down then.

    Use it as a context manager around the transfer: the alarm runs from entry to exit.
    """

    def __init__(
        self, seconds: float, *, clock: Monotonic = time.monotonic, alarm: AlarmFactory = thread_alarm
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._ends_at = clock() + seconds
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._timed_out = False
        self._finished = False
        self._alarm = alarm(seconds, self.expire)

    def __enter__(self) -> Deadline:
        self._alarm.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._alarm.cancel()
        with self._lock:
            self._finished = True
            self._replace_socket(None)

    @property
    def expired(self) -> bool:
        return self._timed_out or self._clock() >= self._ends_at

    def operation_timeout(self) -> float:
        """The time left, as a timeout for one socket operation (never zero, which means non-blocking)."""
        return max(self._ends_at - self._clock(), 0.001)

    def watch_connection(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace hook: take hold of each connection's socket as it opens."""
        if event != _CONNECTION_OPENED:
            return
        stream = info.get("return_value")
        connection = None if stream is None else stream.get_extra_info("socket")
        if not isinstance(connection, socket.socket):
            return
        duplicate = socket.socket(fileno=socket.dup(connection.fileno()))
        with self._lock:
            self._replace_socket(duplicate)
            if self._timed_out or self._finished:
                _shut_down(duplicate)

    def expire(self) -> None:
        """The time is up: what the alarm calls. Shuts the current connection down."""
        with self._lock:
            if self._finished:
                return
            self._timed_out = True
            if self._socket is not None:
                _shut_down(self._socket)

    def _replace_socket(self, duplicate: socket.socket | None) -> None:
        # Called with the lock held. Closing the previous duplicate lets that connection really close.
        if self._socket is not None:
            self._socket.close()
        self._socket = duplicate


def _shut_down(connection: socket.socket) -> None:
    # The peer may have closed it already; it is stopped either way.
    with suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
