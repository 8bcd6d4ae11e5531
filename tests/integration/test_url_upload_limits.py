"""URL uploads against a host that answers a byte at a time: others are served, each account capped.

The app runs under a real uvicorn on loopback, with its real thread pool; the image host holds
every fetch after the first byte until the test lets go, so the uploads stay in flight for as
long as the test needs them to.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import httpx
import numpy as np
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.http import ImageHost, TricklingHost
from tests.support.live import live_server
from tests.support.polling import wait_for

from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.domain.clock import system_clock
from kinema.settings import Settings
from kinema.store.database import Database

BY_URL = "/api/file-url-upload"
#: More uploads at once than the request pool has threads (anyio's 40).
UPLOADS = 45
#: What another account's call may take at most while the uploads are in flight.
ANSWER_DEADLINE_S = 10.0


def _png() -> bytes:
    ok, encoded = cv2.imencode(".png", np.full((64, 96, 3), 90, np.uint8))
    assert ok
    return encoded.tobytes()


class CountingUploads:
    """ASGI middleware counting the URL uploads that reached the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.entered = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == BY_URL:
            with self._lock:
                self.entered += 1
        await self.app(scope, receive, send)


def _open_account(settings: Settings, name: str, credits: int = 1000) -> str:
    db = Database(settings.database_url)
    with db.write() as connection:
        secret = keys.open_account(connection, name, credits, system_clock()).secret
    db.dispose()
    return secret


def _headers(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _uploads_in_threads(
    base: str, secret: str, url: str, count: int
) -> tuple[list[threading.Thread], list[Any]]:
    answers: list[Any] = []

    def upload(index: int) -> None:
        with httpx.Client(base_url=base, timeout=90) as client:
            response = client.post(
                BY_URL,
                json={"fileUrl": url, "uploadPath": "slow", "fileName": f"{index}.png"},
                headers=_headers(secret),
            )
            answers.append(response.json())

    threads = [threading.Thread(target=upload, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    return threads, answers


def _finish(slow_host: TricklingHost, threads: list[threading.Thread]) -> None:
    slow_host.release()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)


def test_uploads_from_a_host_that_trickles_leave_other_accounts_answered(
    make_settings: MakeSettings, slow_host: TricklingHost, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    settings = make_settings(
        url_fetch_threads=3, url_uploads_per_account=UPLOADS, url_upload_rate_limit="1000/second"
    )
    attacker = _open_account(settings, "attacker")
    other = _open_account(settings, "other")
    image_url = image_server.add("/cat.jpg", sample_jpeg)
    app = CountingUploads(create_app(settings))
    with live_server(app) as base:  # type: ignore[arg-type]
        threads, answers = _uploads_in_threads(base, attacker, slow_host.url, UPLOADS)
        try:
            wait_for(
                lambda: app.entered == UPLOADS and slow_host.held >= 3,
                what="every upload to reach the app and the fetch threads to be held",
            )
            with httpx.Client(base_url=base, timeout=ANSWER_DEADLINE_S) as client:
                assert client.get("/healthz").status_code == 200
                balance = client.get("/api/v1/chat/credit", headers=_headers(other)).json()
                assert balance == {"code": 200, "msg": "success", "data": 1000}
                created = client.post(
                    "/api/v1/jobs/createTask", json=seed_body(image_url), headers=_headers(other)
                ).json()
                assert created["code"] == 200, created
            # The fetches waited for their own threads, no more of them at the host at once.
            assert slow_host.most_held == 3
        finally:
            _finish(slow_host, threads)
    assert [answer["code"] for answer in answers] == [200] * UPLOADS
    assert slow_host.started == UPLOADS


def test_an_account_past_its_uploads_in_flight_is_refused_and_others_are_not(
    make_settings: MakeSettings, slow_host: TricklingHost
) -> None:
    settings = make_settings(
        url_fetch_threads=8, url_uploads_per_account=2, url_upload_rate_limit="1000/second"
    )
    first = _open_account(settings, "first")
    second = _open_account(settings, "second")
    with live_server(create_app(settings)) as base:
        threads, answers = _uploads_in_threads(base, first, slow_host.url, 2)
        try:
            wait_for(lambda: slow_host.held == 2, what="two uploads to be in flight")
            with httpx.Client(base_url=base, timeout=ANSWER_DEADLINE_S) as client:
                refused = client.post(
                    BY_URL, json={"fileUrl": slow_host.url, "uploadPath": "slow"}, headers=_headers(first)
                )
                assert refused.status_code == 429
                assert int(refused.headers["Retry-After"]) >= 1
                assert refused.json() == {
                    "success": False,
                    "code": 429,
                    "msg": "Too many URL uploads at once: at most 2 per account run together; retry in 2 s",
                    "data": None,
                }
            # Nothing was fetched for the refused call; another account still has its own room.
            assert slow_host.started == 2
            more, more_answers = _uploads_in_threads(base, second, slow_host.url, 1)
            threads += more
            wait_for(lambda: slow_host.held == 3, what="the other account's upload to be in flight")
        finally:
            _finish(slow_host, threads)
    assert [answer["code"] for answer in answers + more_answers] == [200] * 3


def test_url_uploads_are_rate_limited_per_account(
    make_settings: MakeSettings, image_server: ImageHost
) -> None:
    settings = make_settings(url_upload_rate_limit="2/minute")
    first = _open_account(settings, "first")
    second = _open_account(settings, "second")
    url = image_server.add("/small.png", _png(), "image/png")
    with live_server(create_app(settings)) as base, httpx.Client(base_url=base, timeout=30) as client:

        def upload(secret: str) -> httpx.Response:
            body = {"fileUrl": url, "uploadPath": "images"}
            return client.post(BY_URL, json=body, headers=_headers(secret))

        assert [upload(first).json()["code"] for _ in range(2)] == [200, 200]
        refused = upload(first)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.json()["msg"].startswith("Too many requests: the limit is 2 per 1 minute")
        assert image_server.requests == ["/small.png"] * 2  # the refused call fetched nothing
        assert upload(second).json()["code"] == 200
