"""`kinema serve` as a user runs it: the seed's request end to end, and a crash in the middle."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import httpx
import pytest
from tests.support.api import Api, seed_body
from tests.support.http import ImageHost, callback_receiver
from tests.support.polling import wait_for
from tests.support.process import kinema, serve, service_env

from kinema.accounts import credits
from kinema.accounts.credits import Movement
from kinema.store.database import Database


def _new_key(data_dir: Path, database_url: str, credits_: int = 1000) -> str:
    done = kinema(
        "keys",
        "create",
        "--name",
        "e2e",
        "--credits",
        str(credits_),
        env=service_env(data_dir, database_url, 0),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_seed_request_end_to_end(
    tmp_path: Path, database_url: str, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    data_dir = tmp_path / "data"
    image_url = image_server.add("/knights.jpg", sample_jpeg)
    with serve(data_dir, database_url, KINEMA_ALLOW_PRIVATE_URLS="true") as served:
        key = _new_key(data_dir, database_url)
        with httpx.Client(base_url=served.base_url, timeout=30) as client:
            api = Api(client, key)
            body = seed_body(image_url)
            before = int(time.time() * 1000)
            task_id = api.create(body)
            states = [api.record(task_id)["state"]]
            assert states[0] in ("waiting", "queuing", "generating")

            def finished() -> dict[str, object] | None:
                record = api.record(task_id)
                if states[-1] != record["state"]:
                    states.append(record["state"])
                return record if record["state"] in ("success", "fail") else None

            record = wait_for(finished, 120, "the task to finish")
            assert record["state"] == "success", (record, served.output())
            assert "generating" in states
            assert json.loads(str(record["param"])) == body
            after = int(time.time() * 1000)
            create_time, complete_time = int(str(record["createTime"])), int(str(record["completeTime"]))
            assert before <= create_time <= complete_time <= after
            assert 0 < int(str(record["costTime"])) <= complete_time - create_time
            video_url = json.loads(str(record["resultJson"]))["resultUrls"][0]
            assert video_url.startswith(served.base_url + "/files/")
            video = client.get(video_url)
            assert video.status_code == 200
            # A player's way: the start, then the rest, in Range requests.
            head = client.get(video_url, headers={"Range": "bytes=0-65535"})
            tail = client.get(video_url, headers={"Range": "bytes=65536-"})
            assert (head.status_code, tail.status_code) == (206, 206)
            assert head.content + tail.content == video.content
        (tmp_path / "result.mp4").write_bytes(head.content + tail.content)
        with av.open(str(tmp_path / "result.mp4")) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.codec_context.width, stream.codec_context.height) == (1366, 768)
            assert sum(1 for _ in container.decode(video=0)) == 150
            assert float(stream.frames / stream.average_rate) == pytest.approx(6.0)


def test_a_crash_mid_generation_is_finished_once_and_charged_once(
    tmp_path: Path, database_url: str, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    data_dir = tmp_path / "data"
    image_url = image_server.add("/knights.jpg", sample_jpeg)
    settings = {"KINEMA_ALLOW_PRIVATE_URLS": "true", "KINEMA_LEASE_SECONDS": "2"}
    key = ""
    with serve(data_dir, database_url, **settings) as served:
        key = _new_key(data_dir, database_url)
        with httpx.Client(base_url=served.base_url, timeout=30) as client:
            api = Api(client, key)
            # 1080P renders long enough to be caught in the middle.
            task_id = api.create(seed_body(image_url, resolution="1080P"))
            wait_for(
                lambda: (r := api.record(task_id))["state"] == "generating" and r["progress"] > 0,
                60,
                "the generation to be under way",
            )
        served.kill()

    with (
        serve(data_dir, database_url, **settings) as served,
        httpx.Client(base_url=served.base_url, timeout=30) as client,
    ):
        api = Api(client, key)
        record = api.wait_state(task_id, "success", "fail", timeout_s=180)
        assert record["state"] == "success", (record, served.output())
        assert record["creditsConsumed"] == 30 + 20  # 1080P, 6 s
        assert api.balance() == 1000 - 50

    db = Database(database_url)
    with db.read() as connection:
        entries = [
            entry
            for entry in credits.ledger(connection, _account_of(db, task_id))
            if entry.task_id == task_id
        ]
        from kinema.tasks import lifecycle

        task = lifecycle.get_task(connection, task_id)
    db.dispose()
    assert [entry.reason for entry in entries] == [Movement.RESERVE]
    assert task is not None
    assert task.lapses == 1
    assert task.attempt >= 3  # intake, the killed generation, the one that finished


def _account_of(db: Database, task_id: str) -> str:
    from kinema.tasks import lifecycle

    with db.read() as connection:
        task = lifecycle.get_task(connection, task_id)
    assert task is not None
    return task.account_id


def test_a_callback_survives_a_crash_between_finish_and_delivery(
    tmp_path: Path, database_url: str, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    data_dir = tmp_path / "data"
    image_url = image_server.add("/knights.jpg", sample_jpeg)
    settings = {
        "KINEMA_ALLOW_PRIVATE_URLS": "true",
        "KINEMA_CALLBACK_TIMEOUT_SECONDS": "3",
        "KINEMA_CALLBACK_RETRY_SCHEDULE": "[0.5]",
    }
    with callback_receiver(["hang"]) as receiver:
        with serve(data_dir, database_url, **settings) as served:
            key = _new_key(data_dir, database_url)
            with httpx.Client(base_url=served.base_url, timeout=30) as client:
                api = Api(client, key)
                task_id = api.create(seed_body(image_url, resolution="768P") | {"callBackUrl": receiver.url})
                api.wait_state(task_id, "success", timeout_s=120)
                # The task has ended and its callback is on its way, held by the receiver.
                wait_for(lambda: len(receiver.received) == 1, 30, "the first attempt")
            served.kill()

        with serve(data_dir, database_url, **settings) as served:
            wait_for(lambda: len(receiver.accepted()) == 1, 60, "the callback after the restart")
            with httpx.Client(base_url=served.base_url, timeout=30) as client:
                answer = Api(client, key).get("/api/v1/jobs/callbacks", taskId=task_id)["data"]
    assert len({request.headers["webhook-id"] for request in receiver.received}) == 1
    assert json.loads(receiver.accepted()[0].body)["data"]["taskId"] == task_id
    (delivery,) = answer["deliveries"]
    assert delivery["state"] == "delivered"
    assert delivery["attempts"][-1]["status"] == 200
