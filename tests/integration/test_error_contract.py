"""Errors as the contract gives them: the upload envelope for a body that cannot be read, and an
OpenAPI document that describes the envelope and the codes each route answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.service import Running, running_app

STREAM = "/api/file-stream-upload"


@pytest.fixture
def service(make_settings: MakeSettings) -> Iterator[Running]:
    with running_app(make_settings(admin_token="a-very-long-admin-token")) as running:
        yield running


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary="],
)
def test_a_multipart_body_that_cannot_be_read_answers_the_upload_envelope(
    service: Running, content_type: str
) -> None:
    answer = service.client.post(
        STREAM, content=b"--x\r\nnot a part", headers=service.api.headers | {"Content-Type": content_type}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["success"], body["code"], body["data"]) == (False, 400, None)
    assert body["msg"].startswith("the multipart body cannot be read: ")


def test_strict_mode_gives_the_unreadable_body_its_status(make_settings: MakeSettings) -> None:
    with running_app(make_settings(strict_http_status=True)) as service:
        answer = service.client.post(
            STREAM, content=b"x", headers=service.api.headers | {"Content-Type": "multipart/form-data"}
        )
    assert answer.status_code == 400
    assert answer.json()["success"] is False


def _schema(service: Running) -> dict[str, Any]:
    document: dict[str, Any] = service.client.get("/openapi.json").json()
    return document


def _codes_in_200(operation: dict[str, Any]) -> list[int]:
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    reference, codes = schema["allOf"]
    assert reference["$ref"].startswith("#/components/schemas/")
    enum: list[int] = codes["properties"]["code"]["enum"]
    return enum


def test_the_document_has_no_error_schema_the_service_never_sends(service: Running) -> None:
    document = _schema(service)
    text = json.dumps(document)
    assert "HTTPValidationError" not in text
    assert '"detail"' not in text
    envelope = document["components"]["schemas"]["Envelope"]
    assert envelope["required"] == ["code", "msg", "data"]
    assert document["components"]["schemas"]["UploadEnvelope"]["required"] == [
        "success",
        "code",
        "msg",
        "data",
    ]


def test_the_hot_routes_list_the_codes_they_answer(service: Running) -> None:
    paths = _schema(service)["paths"]
    create = paths["/api/v1/jobs/createTask"]["post"]
    assert _codes_in_200(create) == [200, 401, 402, 413, 422, 455, 500, 505]
    assert set(create["responses"]) == {"200", "401", "402", "413", "422", "429", "500", "503", "505", "507"}
    poll = paths["/api/v1/jobs/recordInfo"]["get"]
    assert _codes_in_200(poll) == [200, 400, 401, 422, 500]
    assert set(poll["responses"]) == {"200", "400", "401", "422", "429", "500", "503"}
    refused = poll["responses"]["401"]["content"]["application/json"]["schema"]["allOf"]
    assert refused[0] == {"$ref": "#/components/schemas/Envelope"}
    upload = paths[STREAM]["post"]
    assert upload["responses"]["400"]["content"]["application/json"]["schema"]["allOf"][0] == {
        "$ref": "#/components/schemas/UploadEnvelope"
    }


def test_what_the_routes_answer_is_among_the_codes_they_document(service: Running) -> None:
    paths = _schema(service)["paths"]
    seen = {
        ("post", "/api/v1/jobs/createTask"): [
            service.client.post("/api/v1/jobs/createTask", json=seed_body("https://a.example/x.jpg")),
            service.client.post("/api/v1/jobs/createTask", json={}, headers=service.api.headers),
            service.client.post("/api/v1/jobs/createTask", content=b"{}", headers=service.api.headers),
        ],
        ("get", "/api/v1/jobs/recordInfo"): [
            service.client.get("/api/v1/jobs/recordInfo", headers=service.api.headers),
            service.client.get(
                "/api/v1/jobs/recordInfo", params={"taskId": "x"}, headers=service.api.headers
            ),
        ],
        ("post", "/api/v1/jobs/cancel"): [
            service.client.post("/api/v1/jobs/cancel", json={}, headers=service.api.headers),
        ],
    }
    for (method, path), answers in seen.items():
        documented = _codes_in_200(paths[path][method])
        for answer in answers:
            assert answer.status_code == 200
            assert answer.json()["code"] in documented, (path, answer.json())
