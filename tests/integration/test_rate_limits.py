"""Rate limits in memory and in a real Redis shared by several API replicas."""

from __future__ import annotations

import secrets

import pytest
from tests.support.redis_server import redis_url

from kinema.api.ratelimit import RateLimits
from kinema.domain.errors import RateLimited


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_the_limit_holds_across_replicas(kind: str) -> None:
    storage = redis_url() if kind == "redis" else "memory://"
    first = RateLimits(storage, "3/minute", "10/second")
    # A second replica shares the counters only through Redis; in memory, it is the same object.
    second = RateLimits(storage, "3/minute", "10/second") if storage.startswith("redis") else first
    account = secrets.token_hex(8)
    first.hit(first.create_task, "create", account)
    second.hit(second.create_task, "create", account)
    first.hit(first.create_task, "create", account)
    with pytest.raises(RateLimited) as refused:
        second.hit(second.create_task, "create", account)
    assert 1 <= refused.value.retry_after_s <= 60
    assert "3 per 1 minute" in refused.value.message
    # Another account has its own allowance.
    second.hit(second.create_task, "create", secrets.token_hex(8))
