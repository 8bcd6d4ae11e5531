"""Rate limits with the `limits` library: in memory by default, in Redis for many replicas.

When the shared storage cannot be reached, each process counts in its own memory instead, so
the service keeps answering and every limit still holds per process (a client spreading its
calls over N replicas gets up to N times its limit while the outage lasts). The outage is
logged once, shown by `/readyz` (``rate_limits``) and `/metrics`
(``kinema_rate_limit_storage_up``), and the shared storage is tried again every few seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Final

from anyio import to_thread
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from kinema.domain.errors import RateLimited

log = logging.getLogger("kinema.api")

#: How long a shared storage that failed is left alone before it is tried again.
RETRY_SHARED_S: Final = 5.0
#: A call to the shared storage that takes longer than this counts as an outage.
SHARED_TIMEOUT_S: Final = 0.5


class RateLimits:
    """The service's limits: new tasks, URL uploads and redeliveries per account, polling per key."""

    def __init__(
        self,
        storage_url: str,
        create_task: str,
        record_info: str,
        *,
        url_upload: str = "20/minute",
        redeliver: str = "10/minute",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._in_memory = storage_url.startswith("memory://")
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if not self._in_memory:
            storage = storage_from_string(
                storage_url,
                wrap_exceptions=True,
                socket_timeout=SHARED_TIMEOUT_S,
                socket_connect_timeout=SHARED_TIMEOUT_S,
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_since: float | None = None  #: When the shared storage last failed.
        self._down_reason = ""
        self.create_task = parse(create_task)
        self.record_info = parse(record_info)
        self.url_upload = parse(url_upload)
        self.redeliver = parse(redeliver)

    @property
    def shared_up(self) -> bool:
        """False while the shared storage is unreachable and limits are counted per process."""
        return self._down_since is None

    @property
    def status(self) -> str:
        """What `/readyz` shows: ``ok``, or why the limits are counted per process."""
        if self._down_since is None:
            return "ok"
        return f"degraded: the shared storage is unreachable ({self._down_reason}); limits count per process"

    def hit(self, limit: RateLimitItem, *identity: str) -> None:
        """Count one request, or raise `RateLimited` (nothing is counted or queued then)."""
        limiter = self._limiter()
        try:
            allowed = limiter.hit(limit, *identity)
            if not allowed:
                reset_at, _remaining = limiter.get_window_stats(limit, *identity)
        except StorageError as error:
            self._went_down(error)
            limiter = self._local
            allowed = limiter.hit(limit, *identity)
            if not allowed:
                reset_at, _remaining = limiter.get_window_stats(limit, *identity)
        else:
            if limiter is not self._local:
                self._came_back()
        if allowed:
            return
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(f"Too many requests: the limit is {limit}; retry in {retry_after} s", retry_after)

    async def hit_soon(self, limit: RateLimitItem, *identity: str) -> None:
        """`hit` from the event loop: in place for the in-memory storage, in a thread for a
        storage across the network (Redis), so the loop never waits on it."""
        if self._in_memory:
            self.hit(limit, *identity)
        else:
            await to_thread.run_sync(self.hit, limit, *identity)

    def _limiter(self) -> MovingWindowRateLimiter:
        if self._shared is None:
            return self._local
        with self._lock:
            down_since = self._down_since
        if down_since is not None and self._monotonic() - down_since < RETRY_SHARED_S:
            return self._local
        return self._shared

    def _went_down(self, error: StorageError) -> None:
        with self._lock:
            first = self._down_since is None
            self._down_since = self._monotonic()
            self._down_reason = type(error.storage_error).__name__
        if first:
            log.warning("rate limits: the shared storage is unreachable (%s); counting per process", error)

    def _came_back(self) -> None:
        with self._lock:
            was_down = self._down_since is not None
            self._down_since = None
            self._down_reason = ""
        if was_down:
            log.warning("rate limits: the shared storage answers again")
