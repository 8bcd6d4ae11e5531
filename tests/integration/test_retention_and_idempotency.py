"""Retention with an injected clock, and idempotent createTask (also under concurrency)."""

from __future__ import annotations

import base64
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from tests.conftest import MakeSettings
from tests.support.api import Api, seed_body
from tests.support.clock import DAY_MS, FakeClock
from tests.support.engines import InstantEngine
from tests.support.http import ImageHost
from tests.support.live import live_server
from tests.support.service import Running, running_app

from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.files import retention
from kinema.files.retention import RetentionPolicy
from kinema.storage import layout
from kinema.storage.local import LocalBlobStore
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask

POLICY = RetentionPolicy(result_ms=14 * DAY_MS, task_ms=60 * DAY_MS)


def _status(service: Running, url: str) -> int:
    link = urlsplit(url)
    return service.client.get(f"{link.path}?{link.query}").status_code


def _upload(service: Running, data: bytes, name: str) -> str:
    answer = service.api.post(
        "/api/file-base64-upload",
        {"base64Data": base64.b64encode(data).decode(), "uploadPath": "r", "fileName": name},
    )
    assert answer["success"], answer
    url: str = answer["data"]["downloadUrl"]
    return url


def test_what_expired_is_gone_and_what_did_not_is_intact(
    make_settings: MakeSettings, sample_jpeg: bytes
) -> None:
    clock = FakeClock()
    settings = make_settings(workers=1)
    with running_app(settings, clock=clock) as service:
        db = Database(settings.database_url)
        store = LocalBlobStore(settings.files_dir)
        old_upload = _upload(service, sample_jpeg, "old.jpg")
        task_id = service.api.create(seed_body(old_upload))
        record = service.api.wait_state(task_id, "success")
        files = [key for key in _keys(store) if task_id in key]
        assert len(files) == 4  # the input's copy, the video and two frames

        clock.advance(2 * DAY_MS)
        new_upload = _upload(service, sample_jpeg, "new.jpg")
        clock.advance(DAY_MS + 1)  # the first upload is now past its three days
        report = retention.sweep(db, store, clock(), POLICY)
        assert (report.uploads, report.task_files, report.tasks) == (1, 0, 0)
        assert _status(service, old_upload) == 410
        assert not (settings.files_dir / "uploads" / service.account_id / "r" / "old.jpg").exists()
        assert _status(service, new_upload) == 200
        video_url = json.loads(service.api.record(task_id)["resultJson"])["resultUrls"][0]
        assert _status(service, video_url) == 200

        clock.advance(11 * DAY_MS)  # fourteen days after the task finished
        report = retention.sweep(db, store, clock(), POLICY)
        assert (report.uploads, report.task_files, report.tasks) == (1, 1, 0)
        assert [key for key in _keys(store) if task_id in key] == []
        after = service.api.record(task_id)
        assert after["state"] == "success"
        assert after["creditsConsumed"] == record["creditsConsumed"]
        assert _status(service, json.loads(after["resultJson"])["resultUrls"][0]) == 410

        clock.advance(46 * DAY_MS)
        assert retention.sweep(db, store, clock(), POLICY).tasks == 1
        assert service.api.get("/api/v1/jobs/recordInfo", taskId=task_id)["msg"] == "recordInfo is null"
        assert retention.sweep(db, store, clock(), POLICY) == retention.SweepReport()
        db.dispose()


def _keys(store: LocalBlobStore) -> list[str]:
    return [
        str(path.relative_to(store.root))
        for path in store.root.rglob("*")
        if path.is_file() and ".staging" not in path.parts
    ]


def test_a_retried_create_task_makes_one_task(make_settings: MakeSettings, sample_jpeg: bytes) -> None:
    with running_app(make_settings()) as service:
        body = seed_body("https://images.example/cat.jpg")
        headers = service.api.headers | {"Idempotency-Key": "order-17"}

        def create(payload: object) -> dict[str, object]:
            answer: dict[str, object] = service.client.post(
                "/api/v1/jobs/createTask", json=payload, headers=headers
            ).json()
            return answer

        first = create(body)
        assert create(body) == first
        assert service.api.balance() == 1000 - 30
        different = create(seed_body("https://images.example/dog.jpg"))
        assert different["code"] == 422
        assert "Idempotency-Key" in str(different["msg"])
        other_key = service.client.post(
            "/api/v1/jobs/createTask",
            json=body,
            headers=service.api.headers | {"Idempotency-Key": "order-18"},
        ).json()
        assert other_key["data"] != first["data"]
        assert service.api.balance() == 1000 - 60


def test_concurrent_retries_make_one_task_and_one_charge(
    make_settings: MakeSettings, image_server: ImageHost
) -> None:
    settings = make_settings(workers=0)
    app = create_app(settings, engine=InstantEngine())
    with running_app(settings) as service:
        key = service.api.key
    body = seed_body("https://images.example/cat.jpg")
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "same-order"}
    with live_server(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:

        def create(_: int) -> str:
            answer = client.post("/api/v1/jobs/createTask", json=body, headers=headers).json()
            assert answer["code"] == 200, answer
            task_id: str = answer["data"]["taskId"]
            return task_id

        with ThreadPoolExecutor(max_workers=12) as pool:
            task_ids = set(pool.map(create, range(24)))
        api = Api(client, key)
        assert len(task_ids) == 1
        assert api.balance() == 1000 - 30
        assert [task["taskId"] for task in api.get("/api/v1/jobs/list")["data"]["tasks"]] == list(task_ids)


def test_an_input_copy_no_task_owns_goes_once_it_is_past_the_grace(db: Database, tmp_path: Path) -> None:
    """createTask writes its copy of the image just before the task: a crash between the two
    leaves a copy no task owns, which the sweep deletes once no task being created can own it."""
    store = LocalBlobStore(tmp_path / "files")
    now = int(time.time() * 1000)
    with db.write() as connection:
        account = keys.open_account(connection, "a", 100, now).record.account_id
        new = NewTask("m", "{}", {"prompt": "p"}, None, 1, ready=True)
        owned = lifecycle.create_task(connection, account, new, now, DAY_MS).id
    stale = now - retention.ORPHAN_INPUT_GRACE_MS - 60_000
    copies = {name: layout.input_key(account, name, "image/jpeg") for name in (owned, "crashed", "creating")}
    for name, key in copies.items():
        store.put_bytes(key, b"jpeg")
        if name != "creating":
            path = store.local_path(key)
            assert path is not None
            os.utime(path, ns=(stale * 1_000_000, stale * 1_000_000))

    report = retention.sweep(db, store, now, POLICY)
    assert report.orphan_inputs == 1
    assert store.stat(copies["crashed"]) is None
    assert store.stat(copies[owned]) is not None, "a task's own input stays"
    assert store.stat(copies["creating"]) is not None, "a copy younger than the grace stays"
    assert retention.sweep(db, store, now, POLICY).orphan_inputs == 0
