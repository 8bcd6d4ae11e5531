"""Request bodies against a real uvicorn server: each route reads only what it may take, and no
more than it needs to answer; a body too large is refused while it streams in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import MakeSettings
from tests.support.engines import InstantEngine
from tests.support.live import live_server

from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.domain.clock import system_clock
from kinema.store.database import Database

CHUNK = b"\x00" * (64 * 1024)
#: 256 MB in all: a server that read it whole could not miss it.
CHUNKS = 4096
#: What loopback's socket buffers can hold between the two ends, in chunks, with room to spare:
#: a server that stopped reading leaves the rest of the body unsent.
IN_FLIGHT = 512
CREATE = "/api/v1/jobs/createTask"
STREAM = "/api/file-stream-upload"
BASE64 = "/api/file-base64-upload"
BOUNDARY = "kinema-test-boundary"


@dataclass
class Sender:
    """A body that counts how many of its chunks the client took to send."""

    head: bytes = b""
    chunks: int = CHUNKS
    sent: int = 0

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            yield self.head
        for _ in range(self.chunks):
            self.sent += 1
            yield CHUNK


@dataclass
class Live:
    base_url: str
    key: str

    def post(self, path: str, body: Sender, key: str | None = None, **headers: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {key or self.key}"}
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            return client.post(path, content=body, headers=auth | headers)


@contextmanager
def live(make_settings: MakeSettings, **overrides: Any) -> Iterator[Live]:
    settings = make_settings(**overrides)
    app = create_app(settings, engine=InstantEngine())
    db = Database(settings.database_url)
    with db.write() as connection:
        new = keys.open_account(connection, "tester", 1000, system_clock())
    db.dispose()
    with live_server(app) as base_url:
        yield Live(base_url, new.secret)


def _multipart_head() -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="uploadPath"\r\n\r\nimages\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()


def test_create_task_checks_the_key_before_it_reads_the_body(make_settings: MakeSettings) -> None:
    with live(make_settings) as server:
        body = Sender(b'{"model": "')
        answer = server.post(CREATE, body, key="kn_not-a-key", **{"Content-Type": "application/json"})
        assert answer.json() == {"code": 401, "msg": "You do not have access permissions", "data": None}
        assert answer.headers["connection"] == "close"
        assert body.sent < IN_FLIGHT


def test_create_task_refuses_a_streamed_body_past_its_cap(make_settings: MakeSettings) -> None:
    with live(make_settings) as server:
        body = Sender(b'{"model": "')
        answer = server.post(CREATE, body, **{"Content-Type": "application/json"})
        assert answer.json() == {"code": 413, "msg": "the request body is larger than 64 KB", "data": None}
        assert answer.headers["connection"] == "close"
        assert body.sent < IN_FLIGHT


def test_a_declared_length_past_the_cap_is_refused_before_any_of_the_body(
    make_settings: MakeSettings,
) -> None:
    with live(make_settings, strict_http_status=True) as server:
        body = Sender(b'{"model": "')
        declared = str(len(CHUNK) * CHUNKS + len(body.head))
        answer = server.post(CREATE, body, **{"Content-Type": "application/json", "Content-Length": declared})
        assert answer.status_code == 413
        assert answer.json()["msg"] == "the request body is larger than 64 KB"
        assert body.sent < IN_FLIGHT


def test_a_chunked_multipart_upload_is_refused_while_it_streams(make_settings: MakeSettings) -> None:
    with live(make_settings, upload_max_bytes=1024 * 1024) as server:
        body = Sender(_multipart_head())
        answer = server.post(STREAM, body, **{"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        assert answer.json() == {
            "success": False,
            "code": 413,
            "msg": "the file is larger than 1 MB",
            "data": None,
        }
        assert body.sent < IN_FLIGHT


def test_a_multipart_upload_declared_too_large_is_refused_at_once(make_settings: MakeSettings) -> None:
    with live(make_settings, upload_max_bytes=1024 * 1024) as server:
        body = Sender(_multipart_head())
        declared = str(len(CHUNK) * CHUNKS + len(body.head))
        answer = server.post(
            STREAM,
            body,
            **{"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": declared},
        )
        assert (answer.json()["success"], answer.json()["code"]) == (False, 413)
        assert body.sent < IN_FLIGHT


def test_the_base64_upload_checks_the_key_before_it_reads_the_body(make_settings: MakeSettings) -> None:
    with live(make_settings) as server:
        body = Sender(b'{"uploadPath": "x", "base64Data": "', chunks=CHUNKS // 64)
        answer = server.post(BASE64, body, key="kn_not-a-key", **{"Content-Type": "application/json"})
        assert answer.json()["code"] == 401
        assert answer.json()["success"] is False
        assert body.sent < IN_FLIGHT // 8


@pytest.mark.parametrize(
    "path", ["/api/v1/jobs/cancel", "/api/v1/common/download-url", "/api/file-url-upload"]
)
def test_every_other_route_takes_a_small_body(make_settings: MakeSettings, path: str) -> None:
    with live(make_settings) as server:
        body = Sender(b'{"taskId": "')
        answer = server.post(path, body, **{"Content-Type": "application/json"})
        assert (answer.json()["code"], answer.json()["msg"]) == (413, "the request body is larger than 16 KB")
        assert body.sent < IN_FLIGHT


def test_bodies_within_their_caps_are_read_whole_and_keep_the_connection(make_settings: MakeSettings) -> None:
    with live(make_settings) as server, httpx.Client(base_url=server.base_url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {server.key}"}
        first = client.post(CREATE, json={"model": "x" * 60_000}, headers=headers)
        assert first.json()["code"] == 422
        assert "connection" not in first.headers
        second = client.post(
            CREATE,
            content=iter([b'{"model":', b' "nope"}']),
            headers=headers | {"Content-Type": "application/json"},
        )
        assert second.json()["msg"] == "The model name you specified is not supported"


def test_the_caps_follow_the_routes_behind_a_path_prefix(make_settings: MakeSettings) -> None:
    settings = make_settings()
    app = create_app(settings, engine=InstantEngine())
    db = Database(settings.database_url)
    with db.write() as connection:
        key = keys.open_account(connection, "tester", 1000, system_clock()).secret
    db.dispose()
    with TestClient(app, root_path="/kinema") as client:
        answer = client.post(
            "/kinema" + CREATE,
            json={"model": "x" * 40_000},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.json()["msg"] == "The model name you specified is not supported"
