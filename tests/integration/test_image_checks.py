"""An image of this server at createTask: cheap checks before any decode, a few decodes at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from tests.conftest import MakeSettings
from tests.support.api import Api, seed_body
from tests.support.polling import wait_for
from tests.support.service import Running, running_app

from kinema.api.services import Services

STREAM = "/api/file-stream-upload"
DECODES = 2
CALLS = 8


@pytest.fixture
def service(make_settings: MakeSettings) -> Iterator[Running]:
    with running_app(make_settings(image_decodes_at_once=DECODES)) as running:
        yield running


def _large_png() -> bytes:
    """12 megapixels that compress to a few kilobytes: cheap to send, costly to decode."""
    picture = np.zeros((3000, 4000, 3), np.uint8)
    picture[::7] = 200
    ok, encoded = cv2.imencode(".png", picture)
    assert ok
    return encoded.tobytes()


def _own_image(api: Api, data: bytes) -> str:
    files = {"file": ("big.png", data, "image/png")}
    answer = api.client.post(STREAM, files=files, data={"uploadPath": "big"}, headers=api.headers).json()
    assert answer["code"] == 200, answer
    url: str = answer["data"]["downloadUrl"]
    return url


class Decodes:
    """Counts Pillow's decodes (`Image.load`) and, while `hold` is clear, keeps them waiting."""

    def __init__(self) -> None:
        self.opened = 0
        self.now = 0
        self.most = 0
        self.hold = threading.Event()
        self.hold.set()
        self._lock = threading.Lock()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original_open, original_load = Image.open, Image.Image.load
        decodes = self

        def counted_open(*args: Any, **kwargs: Any) -> Image.Image:
            with decodes._lock:
                decodes.opened += 1
            return original_open(*args, **kwargs)

        def counted_load(image: Image.Image) -> Any:
            with decodes._lock:
                decodes.now += 1
                decodes.most = max(decodes.most, decodes.now)
            try:
                decodes.hold.wait(60)
                return original_load(image)
            finally:
                with decodes._lock:
                    decodes.now -= 1

        monkeypatch.setattr(Image, "open", counted_open)
        monkeypatch.setattr(Image.Image, "load", counted_load)


def test_an_account_that_cannot_pay_is_refused_before_its_image_is_opened(
    service: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    broke = service.open_account(credits=0, name="broke")
    url = _own_image(broke, _large_png())
    decodes = Decodes()
    decodes.install(monkeypatch)
    answer = broke.post("/api/v1/jobs/createTask", seed_body(url))
    assert (answer["code"], answer["msg"]) == (402, "Credits insufficient")
    assert decodes.opened == 0
    # The same image from an account that can pay is checked, and queued.
    task_id = service.api.create(seed_body(url))
    assert decodes.opened >= 1
    assert service.api.record(task_id)["state"] == "queuing"


def test_images_checked_at_create_task_are_decoded_a_few_at_a_time(
    service: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _own_image(service.api, _large_png())
    found: Services = service.app.state.services
    decodes = Decodes()
    decodes.install(monkeypatch)
    decodes.hold.clear()
    answers: list[dict[str, Any]] = []

    def create() -> None:
        answers.append(service.api.post("/api/v1/jobs/createTask", seed_body(url)))

    threads = [threading.Thread(target=create) for _ in range(CALLS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: decodes.now == DECODES and found.decodes.waiting == CALLS - DECODES,
            what="two decodes running and the others waiting their turn",
        )
    finally:
        decodes.hold.set()
        for thread in threads:
            thread.join(60)
    assert [answer["code"] for answer in answers] == [200] * CALLS
    assert decodes.most == DECODES
    assert (found.decodes.decoding, found.decodes.waiting) == (0, 0)
