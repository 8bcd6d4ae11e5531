"""The minimax engine inside the real service, against a MiniMax stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.http import ImageHost
from tests.support.minimax import API_KEY, FakeMinimax, busiest_window, fake_minimax
from tests.support.polling import wait_for
from tests.support.service import Running, running_app

from kinema import runtime
from kinema.domain.clock import system_clock
from kinema.engines.minimax.engine import MinimaxEngine
from kinema.settings import Settings
from kinema.store.database import Database


def minimax_settings(make_settings: MakeSettings, fake: FakeMinimax, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "engine": "minimax",
        "workers": 1,
        "minimax_api_key": API_KEY,
        "minimax_base_url": fake.base_url,
        "minimax_poll_seconds": 0.05,
        # Tests poll faster than MiniMax's published limit allows.
        "minimax_rate_limit": "1000/second",
    }
    return make_settings(**(values | overrides))


def minimax_engine(settings: Settings, db: Database) -> MinimaxEngine:
    """The engine exactly as the service builds it from settings (its rate gate on `db`)."""
    engine = runtime.load_engines(settings, db, system_clock)["minimax"]
    assert isinstance(engine, MinimaxEngine)
    return engine


@contextmanager
def minimax_service(settings: Settings) -> Iterator[Running]:
    db = Database(settings.database_url)
    engine = minimax_engine(settings, db)
    try:
        with running_app(settings, engine=engine) as service:
            yield service
    finally:
        engine.close()
        db.dispose()


def test_a_task_runs_to_success_through_minimax(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with fake_minimax() as fake, minimax_service(minimax_settings(make_settings, fake)) as service:
        api = service.api
        body = seed_body(url, prompt="[Truck left] Two knights clash at sunset.")
        task_id = api.create(body)
        record = api.wait_state(task_id, "success", "fail")

        assert record["state"] == "success", record
        assert record["progress"] == 100
        assert record["creditsConsumed"] == 30
        assert api.balance() == 1000 - 30
        result = json.loads(record["resultJson"])
        link = urlsplit(result["resultUrls"][0])
        downloaded = service.client.get(f"{link.path}?{link.query}")
        assert downloaded.status_code == 200
        assert downloaded.content == fake.video
        assert set(result) == {"resultUrls"}
        first = urlsplit(record["firstFrameUrl"])
        assert service.client.get(f"{first.path}?{first.query}").headers["content-type"] == "image/jpeg"
        (submission,) = fake.submissions
        assert submission.body is not None
        assert submission.body["model"] == "MiniMax-Hailuo-2.3"
        assert submission.body["prompt"] == "[Truck left] Two knights clash at sunset."
        assert (submission.body["duration"], submission.body["resolution"]) == (6, "768P")


def test_text_to_video_through_minimax(make_settings: MakeSettings) -> None:
    with fake_minimax() as fake, minimax_service(minimax_settings(make_settings, fake)) as service:
        body = {
            "model": "hailuo/02-text-to-video-standard",
            "input": {"prompt": "A paper boat drifts down a rainy street.", "duration": "6"},
        }
        record = service.api.wait_state(service.api.create(body), "success", "fail")
        assert record["state"] == "success", record
        (submission,) = fake.submissions
        assert submission.body is not None
        assert "first_frame_image" not in submission.body
        assert submission.body["model"] == "MiniMax-Hailuo-02"


@pytest.mark.parametrize(
    ("script", "fail_code", "words", "degraded"),
    [
        ({"codes": {"submit": [1004]}}, "500", "MiniMax refused the API key (1004)", True),
        ({"codes": {"submit": [2049]}}, "500", "MiniMax refused the API key (2049)", True),
        ({"codes": {"submit": [1008]}}, "500", "balance is too low", True),
        ({"codes": {"submit": [1026]}}, "422", "content check refused the prompt or image (1026)", False),
        ({"codes": {"submit": [2013]}}, "422", "refused the request's parameters (2013)", False),
        ({"codes": {"query": [1027]}}, "501", "content check refused the generated video (1027)", False),
        ({"statuses": ["Processing", "Fail"]}, "501", "internal model error", False),
    ],
    ids=["1004", "2049", "1008", "1026", "2013", "1027", "Fail"],
)
def test_each_upstream_refusal_fails_the_task_and_refunds(
    make_settings: MakeSettings,
    image_server: ImageHost,
    sample_jpeg: bytes,
    script: dict[str, Any],
    fail_code: str,
    words: str,
    degraded: bool,
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with fake_minimax(**script) as fake, minimax_service(minimax_settings(make_settings, fake)) as service:
        task_id = service.api.create(seed_body(url))
        record = service.api.wait_state(task_id, "success", "fail")

        assert record["state"] == "fail"
        assert record["failCode"] == fail_code
        assert words in record["failMsg"]
        assert API_KEY not in record["failMsg"]
        assert record["creditsConsumed"] == 0
        assert service.api.balance() == 1000
        engines = service.client.get("/readyz").json()["data"]["engines"]
        if degraded:
            assert engines.startswith("degraded: ")
            assert words in engines
            assert API_KEY not in engines
        else:
            assert engines == "ok"


def test_the_rate_limit_holds_across_two_workers(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    window_s, limit = 2.0, 3
    # Upstream tasks stay Processing until both workers have submitted one.
    with fake_minimax(statuses=["Processing", "Success"], hold=True) as fake:
        settings = minimax_settings(make_settings, fake, minimax_rate_limit=f"{limit}/{window_s:g} seconds")
        db = Database(settings.database_url)
        second = runtime.build_worker(settings, db, clock=system_clock)
        try:
            second.start()
            with minimax_service(settings) as service:
                tasks = [service.api.create(seed_body(url)) for _ in range(2)]
                # Each worker has one generation thread: two tasks in flight means both work.
                wait_for(lambda: len(fake.submissions) == 2, 20, "both workers to submit")
                fake.hold = False
                for task_id in tasks:
                    record = service.api.wait_state(task_id, "success", "fail")
                    assert record["state"] == "success", record
        finally:
            second.stop()
            for engine in second.engines.values():
                assert isinstance(engine, MinimaxEngine)
                engine.close()
            db.dispose()

    requests = sorted(call.at for call in fake.video_requests())
    assert len(fake.submissions) == 2
    assert len(requests) >= 2 * limit  # two submissions, and at least two polls each
    # The gate gives a turn just before a request leaves; it arrives here a little later, by a
    # few ms, or by a few hundred on a busy machine: hence the margin on the window.
    assert busiest_window(requests, window_s - 0.5) <= limit
    # And the gate held requests back: they are spread over as many windows as they need.
    assert requests[-1] - requests[0] >= (math.ceil(len(requests) / limit) - 1) * window_s - 0.5


def test_progress_is_reported_while_minimax_works(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with (
        fake_minimax(hold=True) as fake,
        minimax_service(minimax_settings(make_settings, fake)) as service,
    ):
        task_id = service.api.create(seed_body(url))
        wait_for(lambda: service.api.record(task_id)["progress"] >= 29, 20, "progress while Processing")
        fake.hold = False
        record = service.api.wait_state(task_id, "success", "fail")
        assert record["state"] == "success"
        assert len(fake.submissions) == 1
