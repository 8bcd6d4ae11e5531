"""Health, readiness and metrics."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient
from sqlalchemy import text
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.engines import InstantEngine
from tests.support.http import ImageHost
from tests.support.polling import wait_for
from tests.support.service import running_app

from kinema.api.app import create_app
from kinema.store.database import Database


def test_healthz_and_readyz_with_a_worker(make_settings: MakeSettings) -> None:
    with running_app(make_settings(workers=1)) as service:
        assert service.client.get("/healthz").status_code == 200
        ready = service.client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        checks = ready.json()["data"]
        assert checks == {
            "database": "ok",
            "migrations": "ok",
            "workers": "ok",
            "engines": "ok",
            "disk": "ok",
            "rate_limits": "ok",
        }


def test_readyz_without_workers_or_with_an_old_schema(make_settings: MakeSettings) -> None:
    settings = make_settings(workers=0)
    with running_app(settings) as service:
        not_ready = service.client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["data"]["workers"] == "no worker has been seen recently"
        db = Database(settings.database_url)
        with db.write() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'old'"))
        db.dispose()
        assert "kinema migrate" in service.client.get("/readyz").json()["data"]["migrations"]


def test_metrics_count_tasks_by_state(make_settings: MakeSettings) -> None:
    with running_app(make_settings(workers=0)) as service:
        service.api.create(seed_body("https://images.example/a.jpg"))
        service.api.create(seed_body("https://images.example/b.jpg"))
        metrics = service.client.get("/metrics")
        assert metrics.status_code == 200
        lines = metrics.text.splitlines()
        assert 'kinema_tasks{state="waiting"} 2.0' in lines
        assert 'kinema_tasks{state="success"} 0.0' in lines
        assert any(line.startswith("kinema_queue_age_seconds ") for line in lines)


def test_generation_time_is_measured(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/a.jpg", sample_jpeg)
    with running_app(make_settings(workers=1)) as service:
        service.api.wait_state(service.api.create(seed_body(url)), "success")

        def counted() -> bool:
            return "kinema_generation_seconds_count 1.0" in service.client.get("/metrics").text.splitlines()

        wait_for(counted, what="the generation to be counted")
        assert 'kinema_tasks_finished_total{outcome="success"} 1.0' in service.client.get("/metrics").text


def test_the_schema_documents_the_published_routes(make_settings: MakeSettings) -> None:
    with running_app(make_settings(workers=0)) as service:
        document = service.client.get("/openapi.json").json()
    paths = document["paths"]
    # The key is the Bearer scheme (Authorize in /docs), not a plain header parameter.
    assert document["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Your API key: `kinema keys create`, or the one `make run` printed.",
    }
    create = paths["/api/v1/jobs/createTask"]["post"]
    assert {p["name"] for p in create["parameters"]} == {"Idempotency-Key"}
    assert create["security"] == [{"BearerAuth": []}]
    assert "application/json" in create["requestBody"]["content"]
    poll = paths["/api/v1/jobs/recordInfo"]["get"]
    assert {(p["name"], p["in"], p["required"]) for p in poll["parameters"]} == {("taskId", "query", True)}
    assert poll["security"] == [{"BearerAuth": []}]


def test_every_route_has_examples_and_the_create_task_example_works(make_settings: MakeSettings) -> None:
    with running_app(make_settings(workers=0, admin_token="a" * 20)) as service:
        document = service.client.get("/openapi.json").json()
        create = document["paths"]["/api/v1/jobs/createTask"]["post"]
        example = create["requestBody"]["content"]["application/json"]["example"]
        answer = service.api.post("/api/v1/jobs/createTask", example)
        assert answer["code"] == 200, answer
    assert example["input"]["prompt"].startswith("Two armored medieval knights clash")
    assert example["input"]["image_url"] == f"{service.settings.public_url}/samples/sample.jpg"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            answers = operation["responses"]["200"]["content"]
            assert any("example" in media for media in answers.values()), (method, path)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                assert "example" in media, (method, path)
            if path.startswith("/api/v1/admin"):
                assert operation["security"] == [{"AdminToken": []}], path
            elif path not in ("/api/v1/models", "/api/v1/kinema/camera-plan", "/healthz", "/readyz"):
                assert operation["security"] == [{"BearerAuth": []}], path
                assert all(p["name"].lower() != "authorization" for p in operation.get("parameters", []))


def test_a_served_app_keeps_what_start_up_made_out_of_the_collectors_way(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    app = create_app(settings, engine=InstantEngine(), settle_heap=True)
    with TestClient(app, base_url=settings.public_url):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    # An app among many in one process (as here) leaves the collector as it is.
    with running_app(settings):
        assert gc.get_freeze_count() == 0
