"""Notifications between processes: PostgreSQL's ``LISTEN``, heard on a thread of its own.

A task created on any API replica is announced on `TASKS_CHANNEL` as its transaction commits
(`kinema.store.dialects.announce`); every worker process listens, so an idle worker claims it
within milliseconds instead of at its next poll. A notice names the claims it concerns (by the
state each takes its tasks from), so that a worker wakes only the loops that may find something.
Notifications are a hint, never the truth: one sent while a listener was reconnecting is lost,
so a listener wakes its owner once after every (re)connection, naming nothing (everything may
have changed), and workers keep a slow safety poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

log = logging.getLogger("kinema.store")

#: Work appeared or a running slot came free: a task created, queued, handed back or finished.
#: The payload lists the states whose claims may now find a task, comma-separated.
TASKS_CHANNEL: Final = "kinema_tasks"


class Listener:
    """Calls `on_notice` with the payload of every notification on `channel`, and with ``""``
    once after each connection.

    The connection is the listener's own (outside the pool, in autocommit); when it drops, the
    listener connects again after `retry_s`, for as long as it runs.
    """

    def __init__(
        self,
        url: URL,
        channel: str,
        on_notice: Callable[[str], None],
        *,
        retry_s: float = 1.0,
        wait_s: float = 0.5,
    ) -> None:
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._channel = channel
        self._on_notice = on_notice
        self._retry_s = retry_s
        self._wait_s = wait_s
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        """Whether notifications reach this listener now (false while it reconnects)."""
        return self._listening.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"kinema-listen-{self._channel}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                if not self._stopping.is_set():
                    log.warning("listening on %s failed (%s); connecting again", self._channel, error)
            finally:
                self._listening.clear()
            self._stopping.wait(self._retry_s)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as connection:
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._listening.set()
            self._on_notice("")  # whatever was announced while no one listened
            while not self._stopping.is_set():
                for notice in connection.notifies(timeout=self._wait_s):
                    self._on_notice(notice.payload)
