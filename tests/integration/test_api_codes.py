"""Every code a client can reach from outside, with the envelope and HTTP status of the contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import MakeSettings
from tests.support.api import SEED_MODEL, Api, seed_body
from tests.support.redis_server import redis_url
from tests.support.service import Running, running_app

from kinema.accounts import keys
from kinema.domain.clock import system_clock
from kinema.store.database import Database

IMAGE = "https://images.example/cat.jpg"


@pytest.fixture
def service(make_settings: MakeSettings) -> Iterator[Running]:
    with running_app(make_settings()) as running:
        yield running


def _create(api: Api, body: Any) -> dict[str, Any]:
    return api.post("/api/v1/jobs/createTask", body)


UNAUTHORIZED = {"code": 401, "msg": "You do not have access permissions", "data": None}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer nope",
        "Basic dXNlcjpwYXNz",
        "Bearer kn_" + "A" * 43,  # well formed, but no such key
        "kn_" + "A" * 43,
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/jobs/createTask"), ("GET", "/api/v1/jobs/recordInfo"), ("GET", "/api/v1/chat/credit")],
)
def test_401_for_a_missing_malformed_or_unknown_key(
    service: Running, authorization: str | None, method: str, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = service.client.request(method, path, headers=headers, json=seed_body(IMAGE))
    assert response.status_code == 200
    assert response.json() == UNAUTHORIZED


def test_401_for_a_revoked_key(service: Running) -> None:
    assert service.api.balance() == 1000
    db = Database(service.settings.database_url)
    with db.write() as connection:
        keys.revoke_key(connection, keys.find_key(connection, service.api.key).id, system_clock())
    db.dispose()
    assert service.api.get("/api/v1/chat/credit") == UNAUTHORIZED


def test_402_when_the_balance_is_short(service: Running) -> None:
    poor = service.open_account(credits=29)
    assert _create(poor, seed_body(IMAGE)) == {"code": 402, "msg": "Credits insufficient", "data": None}
    assert poor.balance() == 29
    assert poor.get("/api/v1/jobs/list")["data"]["tasks"] == []


def test_real_404_for_an_unknown_route(service: Running) -> None:
    response = service.client.get("/api/v1/jobs/nothing-here", headers=service.api.headers)
    assert response.status_code == 404
    assert response.json()["code"] == 404


def _without(key: str) -> dict[str, Any]:
    body = seed_body(IMAGE)
    del body["input"][key]
    return body


INVALID_BODIES: list[tuple[str, Any, str]] = [
    (
        "unknown model",
        seed_body(IMAGE) | {"model": "sora-9"},
        "The model name you specified is not supported",
    ),
    ("no model", {"input": seed_body(IMAGE)["input"]}, "model is required"),
    (
        "1080P with 10 s",
        seed_body(IMAGE, duration="10", resolution="1080P"),
        "10 seconds videos are not supported for 1080P resolution",
    ),
    ("duration", seed_body(IMAGE, duration="7"), 'input.duration must be one of "6", "10"'),
    ("resolution", seed_body(IMAGE, resolution="4K"), 'input.resolution must be one of "768P", "1080P"'),
    ("no prompt", _without("prompt"), "input.prompt is required"),
    ("long prompt", seed_body(IMAGE, prompt="x" * 5001), "input.prompt must be at most 5000 characters"),
    ("no image", _without("image_url"), "input.image_url is required"),
    ("unknown input key", seed_body(IMAGE, seed=3), "input.seed"),
    ("callback", seed_body(IMAGE) | {"callBackUrl": "ftp://x"}, "callBackUrl"),
    ("not an object", [1, 2], "object"),
]


@pytest.mark.parametrize(
    ("case", "body", "message"), INVALID_BODIES, ids=[case for case, _, _ in INVALID_BODIES]
)
def test_422_names_the_field_and_the_rule(service: Running, case: str, body: Any, message: str) -> None:
    answer = _create(service.api, body)
    assert answer["code"] == 422, case
    assert message in answer["msg"]
    assert answer["data"] is None
    assert service.api.balance() == 1000


def test_422_for_a_body_that_is_not_json(service: Running) -> None:
    response = service.client.post(
        "/api/v1/jobs/createTask",
        content=b"{not json",
        headers=service.api.headers | {"Content-Type": "application/json"},
    )
    assert response.json()["code"] == 422
    assert "JSON" in response.json()["msg"]


def test_recordinfo_of_an_unknown_task_and_without_a_task_id(service: Running) -> None:
    assert service.api.get("/api/v1/jobs/recordInfo", taskId="0" * 32) == {
        "code": 422,
        "msg": "recordInfo is null",
        "data": None,
    }
    assert service.api.get("/api/v1/jobs/recordInfo") == {
        "code": 400,
        "msg": "taskId parameter is required",
        "data": None,
    }


def test_505_for_a_model_the_engine_cannot_run(service: Running) -> None:
    body = {"model": "hailuo/02-text-to-video-standard", "input": {"prompt": "a cat"}}
    assert _create(service.api, body) == {
        "code": 505,
        "msg": "This feature is currently disabled",
        "data": None,
    }
    assert service.api.balance() == 1000


def test_455_in_maintenance(make_settings: MakeSettings) -> None:
    with running_app(make_settings(maintenance=True)) as service:
        answer = _create(service.api, seed_body(IMAGE))
        assert answer["code"] == 455
        assert service.api.balance() == 1000  # reads still work


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_429_with_retry_after_and_nothing_queued(make_settings: MakeSettings, storage: str) -> None:
    storage_url = redis_url() if storage == "redis" else "memory://"
    settings = make_settings(
        create_task_rate_limit="2/minute",
        record_info_rate_limit="3/minute",
        rate_limit_storage_url=storage_url,
    )
    with running_app(settings) as service:
        first = service.api.create(seed_body(IMAGE))
        service.api.create(seed_body(IMAGE))
        response = service.client.post(
            "/api/v1/jobs/createTask", json=seed_body(IMAGE), headers=service.api.headers
        )
        assert response.status_code == 429
        assert response.json()["code"] == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert len(service.api.get("/api/v1/jobs/list")["data"]["tasks"]) == 2
        assert service.api.balance() == 1000 - 2 * 30

        for _ in range(3):
            assert service.api.get("/api/v1/jobs/recordInfo", taskId=first)["code"] == 200
        polled = service.client.get(
            "/api/v1/jobs/recordInfo", params={"taskId": first}, headers=service.api.headers
        )
        assert polled.status_code == 429
        assert int(polled.headers["Retry-After"]) >= 1
        # The polling limit is per key: another key of another account is not affected.
        other = service.open_account()
        assert other.get("/api/v1/jobs/recordInfo", taskId=first)["code"] == 422


def test_strict_mode_uses_the_code_as_http_status(make_settings: MakeSettings) -> None:
    with running_app(make_settings(strict_http_status=True)) as service:
        assert service.client.get("/api/v1/chat/credit").status_code == 401
        response = service.client.post(
            "/api/v1/jobs/createTask", json={"model": SEED_MODEL}, headers=service.api.headers
        )
        assert response.status_code == 422
        assert service.client.get("/api/v1/chat/credit", headers=service.api.headers).status_code == 200


def test_models_lists_the_catalog_with_prices(service: Running) -> None:
    answer = service.client.get("/api/v1/models").json()
    assert answer["code"] == 200
    by_name = {model["model"]: model for model in answer["data"]}
    assert set(by_name) == {
        SEED_MODEL,
        "hailuo/2-3-image-to-video-pro",
        "hailuo/02-image-to-video-standard",
        "hailuo/02-text-to-video-standard",
    }
    seed = by_name[SEED_MODEL]
    assert seed["available"] is True
    assert {"duration": "6", "resolution": "768P", "credits": 30} in seed["prices"]
    assert by_name["hailuo/02-text-to-video-standard"]["available"] is False


def test_admin_routes_only_with_the_admin_token(make_settings: MakeSettings) -> None:
    with running_app(make_settings()) as service:
        assert service.client.post("/api/v1/admin/keys", json={"name": "x"}).status_code == 404
    token = "a-very-long-admin-token"
    with running_app(make_settings(admin_token=token)) as service:
        admin = {"Authorization": f"Bearer {token}"}
        assert service.client.post("/api/v1/admin/keys", json={"name": "x"}).json()["code"] == 401
        assert (
            service.client.post("/api/v1/admin/keys", json={"name": "x"}, headers=service.api.headers).json()[
                "code"
            ]
            == 401
        )
        made = service.client.post(
            "/api/v1/admin/keys", json={"name": "bob", "credits": 40}, headers=admin
        ).json()
        assert made["code"] == 200
        bob = Api(service.client, made["data"]["key"])
        assert bob.balance() == 40
        granted = service.client.post(
            "/api/v1/admin/credits", json={"account": made["data"]["keyId"], "amount": 60}, headers=admin
        ).json()
        assert granted["data"]["balance"] == 100
        listed = service.client.get("/api/v1/admin/keys", headers=admin).json()["data"]
        assert {entry["name"] for entry in listed} == {"tester", "bob"}
        assert all("key" not in entry for entry in listed)
        revoked = service.client.post(
            "/api/v1/admin/keys/revoke", json={"key": made["data"]["key"]}, headers=admin
        )
        assert revoked.json()["code"] == 200
        assert bob.get("/api/v1/chat/credit")["code"] == 401
        missing = service.client.post("/api/v1/admin/keys", json={}, headers=admin).json()
        assert missing["code"] == 422
        assert "name" in missing["msg"]
