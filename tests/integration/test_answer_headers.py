"""The headers on every answer of the app, and CORS only where it is configured."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.service import Running, running_app

APP_ORIGIN = "https://app.example.com"


@pytest.fixture
def service(make_settings: MakeSettings) -> Iterator[Running]:
    with running_app(make_settings()) as running:
        yield running


def test_every_kind_of_answer_says_nosniff(service: Running) -> None:
    def boom() -> None:
        raise RuntimeError("an unexpected failure")

    service.app.add_api_route("/boom", boom)
    api = service.api
    task_id = api.create(seed_body("https://images.example/a.jpg"))
    answers: list[httpx.Response] = [
        service.client.post("/api/v1/jobs/createTask", json={}, headers=api.headers),
        service.client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}, headers=api.headers),
        service.client.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}),  # 401
        service.client.get("/api/v1/jobs/list", headers=api.headers),
        service.client.post("/api/v1/jobs/cancel", content=b"x" * 20_000, headers=api.headers),  # 413
        service.client.get("/no/such/route"),
        service.client.delete("/api/v1/jobs/list"),  # 405
        service.client.get("/files/results/x.mp4?expires=1&signature=x"),
        service.client.get("/"),
        service.client.get("/docs"),
        service.client.get("/openapi.json"),
        service.client.get("/llms.txt"),
        service.client.get("/samples/sample.jpg"),
        service.client.get("/healthz"),
        service.client.get("/readyz"),
        service.client.get("/metrics"),
        service.client.get("/boom"),  # 500
    ]
    statuses = {answer.status_code for answer in answers}
    assert {200, 404, 405, 500} <= statuses
    for answer in answers:
        assert answer.headers.get("x-content-type-options") == "nosniff", answer.request.url


def test_no_cors_unless_configured(service: Running) -> None:
    asked = service.client.get("/api/v1/chat/credit", headers=service.api.headers | {"Origin": APP_ORIGIN})
    assert asked.json()["code"] == 200
    assert not any(name.startswith("access-control-") for name in asked.headers)
    preflight = service.client.options(
        "/api/v1/jobs/createTask",
        headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert not any(name.startswith("access-control-") for name in preflight.headers)


def test_configured_origins_may_call_from_a_browser_and_no_others(make_settings: MakeSettings) -> None:
    with running_app(make_settings(cors_origins=[APP_ORIGIN])) as service:
        preflight = service.client.options(
            "/api/v1/jobs/createTask",
            headers={
                "Origin": APP_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
        assert "access-control-allow-credentials" not in preflight.headers
        asked = service.client.get(
            "/api/v1/chat/credit", headers=service.api.headers | {"Origin": APP_ORIGIN}
        )
        assert asked.headers["access-control-allow-origin"] == APP_ORIGIN
        assert asked.headers["x-content-type-options"] == "nosniff"
        other = service.client.get(
            "/api/v1/chat/credit", headers=service.api.headers | {"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    "origin", ["app.example.com", "https://app.example.com/", "https://a.example/path", "ftp://a"]
)
def test_an_origin_that_is_not_one_is_refused_at_start(make_settings: MakeSettings, origin: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        make_settings(cors_origins=[origin])
