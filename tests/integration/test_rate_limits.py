"""Rate limits in memory and in a real Redis shared by several API replicas."""

from __future__ import annotations

import secrets

import pytest
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.live import free_port
from tests.support.redis_server import redis_url
from tests.support.service import running_app

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


def test_an_unreachable_redis_leaves_the_limits_per_process_and_says_so() -> None:
    now = [100.0]
    limits = RateLimits(
        f"redis://127.0.0.1:{free_port()}/0", "2/minute", "10/second", monotonic=lambda: now[0]
    )
    account = secrets.token_hex(8)
    limits.hit(limits.create_task, "create", account)
    assert not limits.shared_up
    assert limits.status.startswith("degraded: the shared storage is unreachable")
    limits.hit(limits.create_task, "create", account)
    with pytest.raises(RateLimited):  # still counted, in this process
        limits.hit(limits.create_task, "create", account)
    now[0] += 60  # the shared storage is tried again later, and is still away
    with pytest.raises(RateLimited):
        limits.hit(limits.create_task, "create", account)
    assert not limits.shared_up


def test_the_service_answers_through_a_redis_outage_and_reports_it(make_settings: MakeSettings) -> None:
    settings = make_settings(rate_limit_storage_url=f"redis://127.0.0.1:{free_port()}/0")
    with running_app(settings) as service:
        task_id = service.api.create(seed_body(f"{settings.public_url}/samples/sample.jpg"))
        assert service.api.get("/api/v1/jobs/recordInfo", taskId=task_id)["code"] == 200
        ready = service.client.get("/readyz").json()["data"]
        assert ready["rate_limits"].startswith("degraded: the shared storage is unreachable")
        metrics = service.client.get("/metrics").text
        assert "kinema_rate_limit_storage_up 0.0" in metrics
