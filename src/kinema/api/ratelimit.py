"""Rate limits with the `limits` library: in memory by default, in Redis for many replicas."""

from __future__ import annotations

import math
import time

from anyio import to_thread
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from kinema.domain.errors import RateLimited


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
    ) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))
        self._in_memory = storage_url.startswith("memory://")
        self.create_task = parse(create_task)
        self.record_info = parse(record_info)
        self.url_upload = parse(url_upload)
        self.redeliver = parse(redeliver)

    def hit(self, limit: RateLimitItem, *identity: str) -> None:
        """Count one request, or raise `RateLimited` (nothing is counted or queued then)."""
        if self._limiter.hit(limit, *identity):
            return
        reset_at, _remaining = self._limiter.get_window_stats(limit, *identity)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(f"Too many requests: the limit is {limit}; retry in {retry_after} s", retry_after)

    async def hit_soon(self, limit: RateLimitItem, *identity: str) -> None:
        """`hit` from the event loop: in place for the in-memory storage, in a thread for a
        storage across the network (Redis), so the loop never waits on it."""
        if self._in_memory:
            self.hit(limit, *identity)
        else:
            await to_thread.run_sync(self.hit, limit, *identity)
