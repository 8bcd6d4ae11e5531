"""What a caller's words become before they reach a database: the same answer on SQLite and on
PostgreSQL, whatever the text holds."""

from __future__ import annotations

import base64
import json
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


# createTask's body: JSON in UTF-8, as the contract gives, and URLs the fetcher could reach.

CREATE = "/api/v1/jobs/createTask"
IMAGE = "https://images.example/knights.jpg"


def _create_raw(service: Running, content: bytes, content_type: str | None) -> dict[str, Any]:
    headers = service.api.headers | ({} if content_type is None else {"Content-Type": content_type})
    answer: dict[str, Any] = service.client.post(CREATE, content=content, headers=headers).json()
    return answer


@pytest.mark.parametrize(
    ("content_type", "encoding", "message"),
    [
        (None, "utf-8", "Content-Type must be application/json (the request has none)"),
        ("text/plain", "utf-8", "Content-Type must be application/json, not text/plain"),
        (
            "application/x-www-form-urlencoded",
            "utf-8",
            "Content-Type must be application/json, not application/x-www-form-urlencoded",
        ),
        (
            "application/json; charset=utf-16",
            "utf-16",
            "the request body must be JSON in UTF-8, not charset=utf-16",
        ),
        ("application/json", "utf-16", "the request body is not valid UTF-8 (at byte 0)"),
        ("application/json", "utf-32", "the request body is not valid UTF-8 (at byte 0)"),
    ],
)
def test_create_task_reads_only_json_in_utf8(
    service: Running, content_type: str | None, encoding: str, message: str
) -> None:
    content = json.dumps(seed_body(IMAGE)).encode(encoding)
    assert _create_raw(service, content, content_type) == {"code": 422, "msg": message, "data": None}
    assert service.api.balance() == 1000


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=UTF-8", "Application/JSON;charset=utf8"]
)
def test_create_task_takes_json_with_or_without_its_charset(service: Running, content_type: str) -> None:
    answer = _create_raw(service, json.dumps(seed_body(IMAGE)).encode(), content_type)
    assert answer["code"] == 200, answer


def test_a_number_too_long_to_read_is_named(service: Running) -> None:
    content = json.dumps(seed_body(IMAGE)).replace('"6"', "7" * 5000).encode()
    answer = _create_raw(service, content, "application/json")
    assert answer["code"] == 422
    assert answer["msg"] == (
        "the request body holds a number of 5000 digits (777777777777...); "
        "numbers may have at most 4300 digits"
    )


#: 127.0.0.1 in full-width digits.
FULL_WIDTH = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"
UNREACHABLE_URLS = [
    ("http://user:pw@images.example/a.jpg", "must not contain a user name or password"),
    ("http://0177.0.0.1/a.jpg", "is not a valid URL (invalid IPv4 address: '0177.0.0.1')"),
    ("http://127.0.0.1%2e/a.jpg", "has an invalid host name"),
    (f"http://{FULL_WIDTH}/a.jpg", f"is not a valid URL (invalid IDNA hostname: '{FULL_WIDTH}')"),
    ("http://images.example:0/a.jpg", "has an invalid port (0)"),
    (f"http://{'a' * 300}.example/a.jpg", "has an invalid host name"),
    (f"http://{'a' * 64}.example/a.jpg", "has an invalid host name"),
    ("http://1.2.3.4.5/a.jpg", "has a malformed numeric host (1.2.3.4.5)"),
    ("http://[fe80::1%25eth0]/a.jpg", "has an invalid IPv6 address (fe80::1%25eth0)"),
    ("http://images.example/a\x00.jpg", "must not contain NUL characters"),
]


@pytest.mark.parametrize(("url", "words"), UNREACHABLE_URLS, ids=[url[:40] for url, _ in UNREACHABLE_URLS])
@pytest.mark.parametrize("field", ["input.image_url", "callBackUrl"])
def test_a_url_that_can_never_be_fetched_is_refused_at_create_task(
    service: Running, field: str, url: str, words: str
) -> None:
    body = seed_body(url) if field == "input.image_url" else seed_body(IMAGE) | {"callBackUrl": url}
    answer = service.api.post(CREATE, body)
    assert answer == {"code": 422, "msg": f"{field} {words}", "data": None}
    assert service.api.balance() == 1000


@pytest.mark.parametrize(
    "url",
    ["http://bücher.example/a.jpg", "http://images.example./a.jpg", "http://[2001:4860::8888]:8443/a.jpg"],
)
def test_urls_the_fetcher_can_reach_pass_create_task(service: Running, url: str) -> None:
    assert service.api.post(CREATE, seed_body(url) | {"callBackUrl": url})["code"] == 200
