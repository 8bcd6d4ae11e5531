"""Fetches of user-given URLs made while a request waits (URL uploads), kept off the request pool.

A fetch may take as long as the remote host likes to answer, up to the fetch deadline: a host
that trickles a byte a second holds whatever thread reads it. Run on the pool that serves
requests, a few dozen such fetches from one account would leave every other caller unanswered.
So fetches run on threads of their own, a bounded number per process (more wait their turn on
the loop, holding nothing), and one account has at most a few in flight at once: beyond that its
calls are refused with 429 at once, before anything is fetched.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, TypeVar

from kinema.domain.errors import RateLimited

T = TypeVar("T")

#: What a refused caller is told to wait: about the time a small fetch takes.
RETRY_AFTER_S: Final = 2


class UrlFetches:
    """Runs fetches for API calls on `threads` threads, at most `per_account` per account at once."""

    def __init__(self, *, threads: int, per_account: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kinema-url-fetch")
        self._per_account = per_account
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def in_flight(self, account_id: str) -> int:
        """The account's fetches taken and not yet finished (running or waiting for a thread)."""
        with self._lock:
            return self._in_flight.get(account_id, 0)

    async def run(self, account_id: str, fetch: Callable[[], T]) -> T:
        """`fetch()` on a fetch thread, its result or what it raised; `RateLimited` at once when
        the account already has `per_account` fetches in flight."""
        with self._lock:
            taken = self._in_flight.get(account_id, 0)
            if taken >= self._per_account:
                raise RateLimited(
                    f"Too many URL uploads at once: at most {self._per_account} per account run "
                    f"together; retry in {RETRY_AFTER_S} s",
                    RETRY_AFTER_S,
                )
            self._in_flight[account_id] = taken + 1
        try:
            future = self._executor.submit(fetch)
        except RuntimeError:  # shut down: the app is stopping
            self._release(account_id)
            raise
        # The slot is given back when the thread is done with it, not when the caller stops
        # waiting: a caller that hangs up does not stop a fetch already reading.
        future.add_done_callback(lambda _done: self._release(account_id))
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Drop the fetches still waiting for a thread; those running end at their deadline."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _release(self, account_id: str) -> None:
        with self._lock:
            left = self._in_flight.get(account_id, 0) - 1
            if left > 0:
                self._in_flight[account_id] = left
            else:
                self._in_flight.pop(account_id, None)
