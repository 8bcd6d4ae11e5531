"""A task's whole way through the in-process service, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.engines import GatedEngine
from tests.support.http import ImageHost
from tests.support.polling import wait_for
from tests.support.service import Running, running_app

from kinema.domain.task import TaskState
from kinema.store.database import Database
from kinema.tasks import lifecycle


def test_seed_request_runs_to_success(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with running_app(make_settings(workers=1)) as service:
        api = service.api
        body = seed_body(url)
        task_id = api.create(body)
        assert len(task_id) == 32
        assert all(c in "0123456789abcdef" for c in task_id)

        record = api.wait_state(task_id, "success", "fail")

        assert record["state"] == "success", record
        assert record["taskId"] == task_id
        assert record["model"] == body["model"]
        assert json.loads(record["param"]) == body
        assert record["failCode"] == ""
        assert record["failMsg"] == ""
        assert record["creditsConsumed"] == 30
        assert record["progress"] == 100
        assert record["createTime"] <= record["updateTime"] == record["completeTime"]
        assert 0 <= record["costTime"] <= record["completeTime"] - record["createTime"]
        result = json.loads(record["resultJson"])
        video_url = result["resultUrls"][0]
        assert video_url.startswith(service.settings.public_url + "/files/")
        # resultJson holds what the published service's does; the stills are fields of their own.
        assert set(result) == {"resultUrls"}
        for still in (record["firstFrameUrl"], record["lastFrameUrl"]):
            assert still.startswith(service.settings.public_url + "/files/")
            part = urlsplit(still)
            assert service.client.get(f"{part.path}?{part.query}").headers["content-type"] == "image/jpeg"
        link = urlsplit(video_url)
        downloaded = service.client.get(f"{link.path}?{link.query}")
        assert downloaded.status_code == 200
        assert downloaded.headers["content-type"] == "video/mp4"
        assert api.balance() == 1000 - 30
        assert image_server.requests == ["/knights.jpg"]


def test_a_bad_image_fails_the_task_and_refunds(make_settings: MakeSettings, image_server: ImageHost) -> None:
    url = image_server.add("/not-an-image.jpg", b"<html>hello</html>", "image/jpeg")
    with running_app(make_settings(workers=1)) as service:
        task_id = service.api.create(seed_body(url))
        record = service.api.wait_state(task_id, "success", "fail")
        assert record["state"] == "fail"
        assert record["failCode"] == "422"
        assert record["failMsg"].startswith("input.image_url: image must be JPEG, PNG or WebP")
        assert record["creditsConsumed"] == 0
        assert record["resultJson"] == ""
        assert service.api.balance() == 1000


def test_a_missing_image_fails_with_the_hosts_answer(
    make_settings: MakeSettings, image_server: ImageHost
) -> None:
    with running_app(make_settings(workers=1)) as service:
        task_id = service.api.create(seed_body(image_server.base_url + "/gone.jpg"))
        record = service.api.wait_state(task_id, "fail")
        assert record["failCode"] == "422"
        assert "404" in record["failMsg"]


def test_private_addresses_are_refused_by_default(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with running_app(make_settings(workers=1, allow_private_urls=False)) as service:
        task_id = service.api.create(seed_body(url))
        record = service.api.wait_state(task_id, "fail")
        assert record["failCode"] == "422"
        assert "private" in record["failMsg"]
        assert image_server.requests == []


def test_cancel_stops_a_running_task_within_a_frame(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    engine = GatedEngine()
    with running_app(make_settings(workers=1), engine=engine) as service:
        task_id = service.api.create(seed_body(url))
        wait_for(engine.started.is_set, what="the engine to start")
        engine.allow(3)
        wait_for(lambda: engine.frames_done == 3, what="three frames")

        answer = service.api.post("/api/v1/jobs/cancel", {"taskId": task_id})

        assert answer["code"] == 200
        record = service.api.wait_state(task_id, "fail")
        assert record["failCode"] == "499"
        assert engine.frames_done == 3
        assert record["creditsConsumed"] == 0
        assert service.api.balance() == 1000


def test_cancel_of_a_queued_task_is_immediate(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with running_app(make_settings(workers=0)) as service:
        task_id = service.api.create(seed_body(url))
        answer = service.api.post("/api/v1/jobs/cancel", {"taskId": task_id})
        assert answer["code"] == 200
        assert answer["data"]["state"] == "fail"
        assert answer["data"]["failCode"] == "499"
        again = service.api.post("/api/v1/jobs/cancel", {"taskId": task_id})
        assert again["code"] == 422
        assert service.api.balance() == 1000


def test_accounts_never_see_each_other(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with running_app(make_settings(workers=0)) as service:
        mine = service.api.create(seed_body(url))
        other = service.open_account()
        assert other.get("/api/v1/jobs/recordInfo", taskId=mine) == {
            "code": 422,
            "msg": "recordInfo is null",
            "data": None,
        }
        assert other.post("/api/v1/jobs/cancel", {"taskId": mine})["code"] == 422
        assert other.get("/api/v1/jobs/list")["data"]["tasks"] == []
        assert [t["taskId"] for t in service.api.get("/api/v1/jobs/list")["data"]["tasks"]] == [mine]


def test_list_pages_newest_first(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    with running_app(make_settings(workers=0), credits=10_000) as service:
        created = [service.api.create(seed_body(url)) for _ in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            params = {"pageSize": 2} | ({"cursor": cursor} if cursor else {})
            page = service.api.get("/api/v1/jobs/list", **params)["data"]
            seen += [task["taskId"] for task in page["tasks"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert seen == list(reversed(created))
        waiting = service.api.get("/api/v1/jobs/list", state="waiting")["data"]["tasks"]
        assert len(waiting) == 5
        assert service.api.get("/api/v1/jobs/list", state="success")["data"]["tasks"] == []


def test_a_task_held_by_the_running_cap_shows_as_waiting(
    make_settings: MakeSettings, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    url = image_server.add("/knights.jpg", sample_jpeg)
    engine = GatedEngine()
    with running_app(make_settings(workers=2, max_running_per_account=1), engine=engine) as service:
        first = service.api.create(seed_body(url))
        service.api.wait_state(first, "generating")
        second = service.api.create(seed_body(url))
        # Fetched and ready, but the account already runs its one task.
        wait_for(
            lambda: service.api.record(second)["state"] == "waiting" and _queued(service, second), what="held"
        )
        other = service.open_account()
        third = other.create(seed_body(url))
        other.wait_state(third, "generating")
        for task_id in (first, second):
            service.api.post("/api/v1/jobs/cancel", {"taskId": task_id})
        other.post("/api/v1/jobs/cancel", {"taskId": third})
        service.api.wait_state(first, "fail")


def _queued(service: Running, task_id: str) -> bool:
    db = Database(service.settings.database_url)
    with db.read() as connection:
        task = lifecycle.get_task(connection, task_id)
    db.dispose()
    return task is not None and task.state is TaskState.QUEUING
