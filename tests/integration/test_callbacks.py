"""Callbacks against real receivers on loopback: retries, signatures, SSRF refusals, many deliverers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.callbacks import finished_task, make_deliverer
from tests.support.clock import FakeClock
from tests.support.http import ImageHost, callback_receiver
from tests.support.polling import wait_for
from tests.support.service import running_app

from kinema.accounts import keys
from kinema.store.database import Database
from kinema.webhooks import history, secrets
from kinema.webhooks.deliverer import Deliverer


def _deliveries(db: Database, task_id: str) -> list[history.Delivery]:
    with db.read() as connection:
        return history.deliveries_of(connection, task_id)


def _run_until_settled(db: Database, clock: FakeClock, deliverer: Deliverer, task_id: str) -> None:
    """Make attempts, moving the clock to each next attempt, until the delivery is settled."""
    for _ in range(20):
        if not deliverer.run_once():
            (delivery,) = _deliveries(db, task_id)
            if delivery.next_attempt_at is None:
                return
            clock.advance(delivery.next_attempt_at - clock())
    raise AssertionError("the delivery never settled")


def test_fails_three_times_then_delivered_once(db: Database) -> None:
    clock = FakeClock()
    with callback_receiver([500, "hang", 302]) as receiver:
        _, task_id = finished_task(db, clock, receiver.url)
        deliverer = make_deliverer(db, clock)
        _run_until_settled(db, clock, deliverer, task_id)

        (delivery,) = _deliveries(db, task_id)
        assert delivery.state == "delivered"
        assert [attempt.status for attempt in delivery.attempts] == [500, None, 302, 200]
        assert [attempt.number for attempt in delivery.attempts] == [1, 2, 3, 4]
        assert "HTTP 500" in delivery.attempts[0].error
        assert "within" in delivery.attempts[1].error  # the timeout
        assert "redirects are not followed" in delivery.attempts[2].error
        assert delivery.attempts[3].error == ""
        starts = [attempt.started_at for attempt in delivery.attempts]
        waits = [later - earlier for earlier, later in itertools.pairwise(starts)]
        assert waits[0] < waits[1] < waits[2]
        assert 4_000 <= waits[0] <= 6_000  # 5 s, give or take the jitter
        assert len(receiver.accepted()) == 1
        assert len({request.headers["webhook-id"] for request in receiver.received}) == 1


def test_the_payload_is_the_record_and_both_signatures_verify(db: Database) -> None:
    clock = FakeClock()
    with callback_receiver() as receiver:
        account_id, task_id = finished_task(db, clock, receiver.url, success=False)
        with db.write() as connection:
            secret = secrets.ensure_secret(connection, account_id, clock())
        assert make_deliverer(db, clock).run_once()

    (request,) = receiver.received
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["code"] == 501
    assert payload["data"]["taskId"] == task_id
    assert payload["data"]["state"] == "fail"
    assert payload["data"]["failMsg"] == "no luck"
    assert payload["data"]["creditsConsumed"] == 0

    # The published scheme, checked with a few lines of hmac as a receiver would.
    timestamp = request.headers["x-webhook-timestamp"]
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    ).decode()
    assert hmac.compare_digest(expected, request.headers["x-webhook-signature"])

    tampered = request.body.replace(b'"fail"', b'"success"')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, request.headers)


def test_a_rotated_secret_still_verifies_for_a_day(db: Database) -> None:
    clock = FakeClock()
    with callback_receiver() as receiver:
        account_id, _ = finished_task(db, clock, receiver.url)
        with db.write() as connection:
            old = secrets.ensure_secret(connection, account_id, clock())
            new = secrets.rotate_secret(connection, account_id, clock())
        assert make_deliverer(db, clock).run_once()
    (request,) = receiver.received
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)
    assert (
        request.headers["x-webhook-signature"]
        == base64.b64encode(
            hmac.new(
                new.encode(),
                f"{json.loads(request.body)['data']['taskId']}.{request.headers['x-webhook-timestamp']}".encode(),
                hashlib.sha256,
            ).digest()
        ).decode()
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "[::1]"])
def test_private_and_metadata_addresses_are_refused_at_delivery(db: Database, address: str) -> None:
    clock = FakeClock()
    with callback_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        _, task_id = finished_task(db, clock, f"http://{address}:{port}/hooks")
        assert make_deliverer(db, clock, allow_private=False).run_once()
        (delivery,) = _deliveries(db, task_id)
        (attempt,) = delivery.attempts
        assert attempt.status is None
        assert "private or reserved address" in attempt.error
        assert delivery.state == "pending"  # tried again later, and refused again then
        assert receiver.received == []


def test_two_deliverers_never_send_one_attempt_twice(db: Database) -> None:
    clock = FakeClock()
    with callback_receiver() as receiver:
        task_ids = [finished_task(db, clock, receiver.url)[1] for _ in range(16)]
        deliverers = [
            make_deliverer(Database(str(db.url.render_as_string(hide_password=False))), clock, owner=f"d{n}")
            for n in range(2)
        ]
        barrier = threading.Barrier(2)

        def drain(deliverer: Deliverer) -> None:
            barrier.wait()
            while deliverer.run_once():
                pass

        threads = [threading.Thread(target=drain, args=(deliverer,)) for deliverer in deliverers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for deliverer in deliverers:
            deliverer.db.dispose()

    ids = [request.headers["webhook-id"] for request in receiver.received]
    assert len(ids) == len(set(ids)) == 16
    for task_id in task_ids:
        (delivery,) = _deliveries(db, task_id)
        assert (delivery.state, len(delivery.attempts)) == ("delivered", 1)


def test_through_the_service(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with (
        callback_receiver([500]) as receiver,
        running_app(make_settings(workers=1, callback_retry_schedule=[0.05])) as service,
    ):
        task_id = service.api.create(seed_body(url) | {"callBackUrl": receiver.url})
        record = service.api.wait_state(task_id, "success")

        def delivered() -> dict[str, Any] | None:
            answer = service.api.get("/api/v1/jobs/callbacks", taskId=task_id)["data"]
            return (
                answer if answer["deliveries"] and answer["deliveries"][0]["state"] == "delivered" else None
            )

        listing = wait_for(delivered, what="the callback to be delivered")
        (delivery,) = listing["deliveries"]
        assert [attempt["status"] for attempt in delivery["attempts"]] == [500, 200]
        secret = service.api.get("/api/v1/webhooks/secret")["data"]["secret"]
        payload = Webhook(secret).verify(receiver.received[-1].body, receiver.received[-1].headers)
        assert payload == {"code": 200, "msg": "success", "data": payload["data"]}
        assert {key: payload["data"][key] for key in ("taskId", "state", "param")} == {
            key: record[key] for key in ("taskId", "state", "param")
        }

        again = service.api.post("/api/v1/jobs/callbacks/redeliver", {"taskId": task_id})
        assert again["code"] == 200
        wait_for(lambda: len(receiver.received) == 3, what="the redelivery")
        assert receiver.received[-1].headers["webhook-id"] == again["data"]["webhookId"]
        rotated = service.api.post("/api/v1/webhooks/secret/rotate", {})["data"]["secret"]
        assert rotated != secret


def test_the_stream_shows_each_state_in_order_and_ends(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with running_app(make_settings(workers=1)) as service:
        task_id = service.api.create(seed_body(url))
        events: list[tuple[str, Any]] = []
        with service.client.stream(
            "GET", "/api/v1/jobs/stream", params={"taskId": task_id}, headers=service.api.headers
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((event, json.loads(line.removeprefix("data: "))))
        states = [data["state"] for name, data in events if name == "state"]
        order = ["waiting", "queuing", "generating", "success"]
        assert states[-1] == "success"
        assert [order.index(state) for state in states] == sorted(order.index(state) for state in states)
        assert events[-1][0] == "record"
        assert events[-1][1]["taskId"] == task_id
        assert events[-1][1]["resultJson"]
        assert service.api.get("/api/v1/jobs/stream", taskId="0" * 32)["msg"] == "recordInfo is null"


def test_concurrent_first_requests_for_the_secret_all_get_the_same_one(db: Database) -> None:
    with db.write() as connection:
        account_id = keys.open_account(connection, "racer", 0, 1).record.account_id
    start = threading.Barrier(12)
    handed: list[str] = []

    def ask() -> None:
        start.wait()
        with db.write() as connection:
            secret = secrets.ensure_secret(connection, account_id, 2)
        handed.append(secret)

    threads = [threading.Thread(target=ask) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(handed) == 12
    assert len(set(handed)) == 1
    with db.read() as connection:
        assert secrets.signing_secrets(connection, account_id, 3) == handed[:1]


def test_concurrent_rotations_leave_one_active_secret(db: Database) -> None:
    with db.write() as connection:
        account_id = keys.open_account(connection, "rotator", 0, 1).record.account_id
    start = threading.Barrier(6)
    made: list[str] = []

    def rotate() -> None:
        start.wait()
        with db.write() as connection:
            made.append(secrets.rotate_secret(connection, account_id, 2))

    threads = [threading.Thread(target=rotate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 6
    with db.read() as connection:
        active = secrets.active_secret(connection, account_id)
    assert active in made


def test_a_stream_ends_once_its_key_is_revoked(make_settings: MakeSettings) -> None:
    with running_app(make_settings(workers=0)) as service:
        task_id = service.api.create(seed_body("https://images.example/never-fetched.jpg"))
        events: list[tuple[str, Any]] = []
        with service.client.stream(
            "GET", "/api/v1/jobs/stream", params={"taskId": task_id}, headers=service.api.headers
        ) as response:
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((event, json.loads(line.removeprefix("data: "))))
                    if event == "state":  # the stream runs: now take its key away
                        db = Database(service.settings.database_url)
                        with db.write() as connection:
                            (record,) = keys.list_keys(connection)
                            keys.revoke_key(connection, record.id, 1)
                        db.dispose()
        assert events[0] == ("state", {"taskId": task_id, "state": "waiting", "progress": 0})
        assert events[-1] == ("error", {"code": 401, "msg": "You do not have access permissions"})
