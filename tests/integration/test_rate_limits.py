"""Rate limits in memory and in a real Redis shared by several API replicas."""

from __future__ import annotations

import os
import secrets

import pytest

from kinema.api.ratelimit import RateLimits
from kinema.domain.errors import RateLimited

REDIS_ENV = "KINEMA_TEST_REDIS_URL"


def _storages() -> list[str]:
    return ["memory://", os.environ.get(REDIS_ENV, "")]


@pytest.mark.parametrize("storage", _storages(), ids=["memory", "redis"])
def test_the_limit_holds_across_replicas(storage: str) -> None:
    if not storage:
        pytest.skip(f"Redis tests need {REDIS_ENV} (for example redis://127.0.0.1:6379/15)")
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
