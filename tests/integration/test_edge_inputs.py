"""What a caller's words become before they reach a database: the same answer on SQLite and on
PostgreSQL, whatever the text holds."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.service import Running, running_app

ADMIN_TOKEN = "a-very-long-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NOT_FOUND = {"code": 422, "msg": "recordInfo is null", "data": None}
#: Ids no task has: a NUL, other control characters, the published service's own spelling,
#: upper case, one digit short.
ODD_IDS = ["a\x00b", "0" * 31 + "\x00", "\x01\x7f", "task_hailuo_1765182986510", "A" * 32, "0" * 31]


@pytest.fixture
def service(make_settings: MakeSettings) -> Iterator[Running]:
    with running_app(make_settings(admin_token=ADMIN_TOKEN)) as running:
        yield running


TaskCall = Callable[[Running, str], httpx.Response]
TASK_ROUTES: dict[str, TaskCall] = {
    "recordInfo": lambda s, i: s.client.get(
        "/api/v1/jobs/recordInfo", params={"taskId": i}, headers=s.api.headers
    ),
    "stream": lambda s, i: s.client.get("/api/v1/jobs/stream", params={"taskId": i}, headers=s.api.headers),
    "callbacks": lambda s, i: s.client.get(
        "/api/v1/jobs/callbacks", params={"taskId": i}, headers=s.api.headers
    ),
    "cancel": lambda s, i: s.client.post("/api/v1/jobs/cancel", json={"taskId": i}, headers=s.api.headers),
    "redeliver": lambda s, i: s.client.post(
        "/api/v1/jobs/callbacks/redeliver", json={"taskId": i}, headers=s.api.headers
    ),
}


@pytest.mark.parametrize("route", TASK_ROUTES)
def test_an_id_no_task_can_have_answers_as_an_unknown_task(service: Running, route: str) -> None:
    for task_id in ODD_IDS:
        answer = TASK_ROUTES[route](service, task_id)
        assert (answer.status_code, answer.json()) == (200, NOT_FOUND), task_id
    # And the next call on the same database is served as usual.
    assert service.api.balance() == 1000


def test_a_bad_key_is_still_refused_before_the_id_is_looked_at(service: Running) -> None:
    answer = service.client.get("/api/v1/jobs/recordInfo", params={"taskId": "a\x00b"})
    assert answer.json()["code"] == 401


def _cursor(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "\x00",
        _cursor(b"123:\x00abc"),
        _cursor(b"123:" + b"0" * 31 + b"\x00"),
        _cursor(b"99999999999999999999999:" + b"a" * 32),
        _cursor(b"-1:" + b"a" * 32),
        _cursor(b"1\x00:" + b"a" * 32),
    ],
)
def test_a_cursor_this_server_never_gave_is_refused_with_words(service: Running, cursor: str) -> None:
    answer = service.api.get("/api/v1/jobs/list", cursor=cursor)
    assert answer == {"code": 422, "msg": "cursor is not one this server gave out", "data": None}


def test_a_cursor_this_server_gave_still_pages(service: Running) -> None:
    made = [service.api.create(seed_body("https://images.example/a.jpg")) for _ in range(3)]
    first = service.api.get("/api/v1/jobs/list", pageSize=2)["data"]
    rest = service.api.get("/api/v1/jobs/list", pageSize=2, cursor=first["nextCursor"])["data"]
    assert [task["taskId"] for task in first["tasks"] + rest["tasks"]] == made[::-1]


ADMIN_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("/api/v1/admin/keys", {"name": "a\x00b"}, "name"),
    ("/api/v1/admin/keys", {"name": "line\nbreak"}, "name"),
    ("/api/v1/admin/keys/revoke", {"key": "a\x00b"}, "key"),
    ("/api/v1/admin/credits", {"account": "a\x00b", "amount": 5}, "account"),
    ("/api/v1/admin/credits", {"account": "\x1b[31m", "amount": 5}, "account"),
]


@pytest.mark.parametrize(("path", "body", "field"), ADMIN_CALLS)
def test_admin_references_with_control_characters_are_refused_with_words(
    service: Running, path: str, body: dict[str, Any], field: str
) -> None:
    answer = service.client.post(path, json=body, headers=ADMIN)
    assert answer.status_code == 200
    assert answer.json() == {
        "code": 422,
        "msg": f"{field} must not contain control characters or unpaired surrogates",
        "data": None,
    }


def test_an_unpaired_surrogate_in_an_admin_name_is_refused(service: Running) -> None:
    answer = service.client.post(
        "/api/v1/admin/keys",
        content=b'{"name": "a\\ud800"}',
        headers=ADMIN | {"Content-Type": "application/json"},
    )
    assert answer.json()["code"] == 422
    assert answer.json()["msg"].startswith("name ")
