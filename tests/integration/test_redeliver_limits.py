"""Redeliver is no relay: one delivery of a task at a time, and a rate limit per account."""

from __future__ import annotations

import threading
from typing import Any

from tests.conftest import MakeSettings
from tests.support.api import Api, seed_body
from tests.support.http import ImageHost, callback_receiver
from tests.support.polling import wait_for
from tests.support.service import Running, running_app

REDELIVER = "/api/v1/jobs/callbacks/redeliver"


def _deliveries(api: Api, task_id: str) -> list[dict[str, Any]]:
    deliveries: list[dict[str, Any]] = api.get("/api/v1/jobs/callbacks", taskId=task_id)["data"]["deliveries"]
    return deliveries


def _finished_and_delivered(service: Running, image_url: str, callback_url: str) -> str:
    task_id = service.api.create(seed_body(image_url) | {"callBackUrl": callback_url})
    service.api.wait_state(task_id, "success")
    wait_for(
        lambda: [d["state"] for d in _deliveries(service.api, task_id)] == ["delivered"],
        what="the callback to be delivered",
    )
    return task_id


def test_a_redelivery_is_refused_while_one_of_the_task_is_pending(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    # The first delivery is answered; the receiver holds the next past its timeout, and the
    # retry comes long after the test: the redelivery stays pending.
    settings = make_settings(
        workers=1,
        callback_timeout_seconds=2,
        callback_retry_schedule=[600],
        redeliver_rate_limit="1000/minute",
    )
    with callback_receiver([200, "hang"]) as receiver, running_app(settings) as service:
        task_id = _finished_and_delivered(service, url, receiver.url)
        again = service.api.post(REDELIVER, {"taskId": task_id})
        assert again["code"] == 200
        answers: list[dict[str, Any]] = []

        def ask() -> None:
            answers.append(service.api.post(REDELIVER, {"taskId": task_id}))

        threads = [threading.Thread(target=ask) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        pending = again["data"]["webhookId"]
        refusal = f"the task's callback {pending} is still pending; ask again once it is delivered or failed"
        assert answers == [{"code": 422, "msg": refusal, "data": None}] * 20
        wait_for(lambda: len(receiver.received) == 2, what="the redelivery to reach the receiver")
        assert [d["state"] for d in _deliveries(service.api, task_id)] == ["delivered", "pending"]
        assert len(receiver.received) == 2


def test_redeliveries_are_rate_limited_per_account(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    settings = make_settings(workers=1, redeliver_rate_limit="2/minute")
    with callback_receiver() as receiver, running_app(settings) as service:
        task_id = _finished_and_delivered(service, url, receiver.url)
        assert service.api.post(REDELIVER, {"taskId": task_id})["code"] == 200
        wait_for(
            lambda: [d["state"] for d in _deliveries(service.api, task_id)] == ["delivered"] * 2,
            what="the redelivery to be delivered",
        )
        assert service.api.post(REDELIVER, {"taskId": task_id})["code"] == 200
        refused = service.client.post(REDELIVER, json={"taskId": task_id}, headers=service.api.headers)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["msg"].startswith("Too many requests: the limit is 2 per 1 minute")
        # Another account has its own allowance (and no such task).
        other = service.open_account(name="other")
        assert other.post(REDELIVER, {"taskId": task_id})["code"] == 422
