"""The SDK against the real service: the blocking client over loopback HTTP to a live server, the
asyncio client in-process through httpx.ASGITransport. Upload, create, wait (live stream and
polling), download, credits, list, cancel, and the errors a real server gives."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import MakeSettings
from tests.support.engines import GatedEngine, InstantEngine
from tests.support.live import free_port, live_server
from tests.support.polling import wait_for
from tests.support.service import running_app

from kinema.accounts import keys
from kinema.api.app import create_app
from kinema.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    InsufficientCreditsError,
    NotFoundError,
    RateLimitError,
    Task,
    TaskCanceledError,
    TaskState,
    ValidationError,
)
from kinema.domain.clock import system_clock
from kinema.engines.base import Engine
from kinema.store.database import Database

STREAM = "/api/v1/jobs/stream"
RECORD_INFO = "/api/v1/jobs/recordInfo"
PRICE = 30  # 6 s at 768P


class RecordingTransport(httpx.HTTPTransport):
    """The network, and a list of the paths asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


@dataclass
class Live:
    base_url: str
    key: str
    database_url: str

    def client(self, **options: Any) -> Client:
        return Client(self.base_url, self.key, **options)

    def open_account(self, credits: int) -> str:
        return _open_account(self.database_url, credits)


def _open_account(database_url: str, credits: int) -> str:
    db = Database(database_url)
    with db.write() as connection:
        secret = keys.open_account(connection, "sdk", credits, system_clock()).secret
    db.dispose()
    return secret


@contextmanager
def live_service(make_settings: MakeSettings, engine: Engine, **overrides: Any) -> Iterator[Live]:
    """`create_app` served on a loopback port that its links name, with a funded account."""
    port = free_port()
    settings = make_settings(**({"workers": 1, "public_url": f"http://127.0.0.1:{port}"} | overrides))
    key = _open_account(settings.database_url, 1000)
    with live_server(create_app(settings, engine=engine), port=port) as base_url:
        yield Live(base_url, key, settings.database_url)


def is_mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


def test_the_whole_flow_follows_the_live_stream(
    make_settings: MakeSettings, sample_jpeg: bytes, tmp_path: Path
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(sample_jpeg)
    transport = RecordingTransport()
    with live_service(make_settings, InstantEngine()) as live, live.client(transport=transport) as client:
        uploaded = client.upload_file(image, upload_path="images")
        assert (uploaded.file_path, uploaded.mime_type) == ("images/photo.jpg", "image/jpeg")
        assert uploaded.file_size == len(sample_jpeg)

        task_id = client.create_task(prompt="[Push in] a lake", image_url=uploaded.download_url, duration=6)
        states: list[str] = []
        task = client.wait(task_id, timeout=60, on_update=lambda t: states.append(t.state))

        assert task.state == TaskState.SUCCESS
        assert states[-1] == "success"
        assert transport.paths.count(STREAM) == 1
        assert transport.paths.count(RECORD_INFO) == 1  # the first look; the stream told the rest
        assert (task.credits_consumed, task.progress) == (PRICE, 100)
        assert task.param["input"]["image_url"] == uploaded.download_url
        assert task.video_url is not None
        assert task.first_frame_url is not None
        assert task.last_frame_url is not None

        video = client.download(task, tmp_path)
        assert video == tmp_path / f"{task_id}.mp4"
        assert is_mp4(video.read_bytes())
        fresh = client.download_url(task.video_url)
        assert client.download(fresh, tmp_path / "again.mp4").read_bytes() == video.read_bytes()
        assert client.download(task_id, tmp_path / "by-id.mp4").read_bytes() == video.read_bytes()

        assert client.credits() == 1000 - PRICE
        assert [listed.task_id for listed in client.list_tasks().tasks] == [task_id]
        assert [listed.task_id for listed in client.iter_tasks(state="success")] == [task_id]
        assert client.list_tasks(state="fail").tasks == ()
        with pytest.raises(ValidationError, match="already finished"):
            client.cancel(task_id)


def test_waiting_by_polling_when_the_stream_is_not_used(
    make_settings: MakeSettings, sample_jpeg: bytes, tmp_path: Path
) -> None:
    transport = RecordingTransport()
    with (
        live_service(make_settings, InstantEngine()) as live,
        live.client(transport=transport, use_stream=False, poll_schedule=lambda _elapsed: 0.05) as client,
    ):
        uploaded = client.upload_file(sample_jpeg)
        task_id = client.create_task(prompt="[Zoom out]", image_url=uploaded.download_url)
        task = client.wait(task_id, timeout=60)
        assert task.succeeded
        assert STREAM not in transport.paths
        assert is_mp4(client.download(task, tmp_path / "out.mp4").read_bytes())


def test_the_stream_reports_progress_as_it_happens(
    make_settings: MakeSettings, sample_jpeg: bytes, tmp_path: Path
) -> None:
    engine = GatedEngine()
    transport = RecordingTransport()
    seen: list[tuple[str, int]] = []
    with live_service(make_settings, engine) as live, live.client(transport=transport) as client:
        task_id = client.create_task(
            prompt="[Pan left]", image_url=client.upload_file(sample_jpeg).download_url
        )
        finished: list[Task] = []
        waiter = threading.Thread(
            target=lambda: finished.append(
                client.wait(task_id, timeout=60, on_update=lambda t: seen.append((t.state, t.progress)))
            )
        )
        waiter.start()
        try:
            assert engine.started.wait(30)
            engine.allow(75)  # half of 150 frames
            wait_for(lambda: any(state == "generating" and progress >= 40 for state, progress in seen), 30)
            assert not finished
        finally:
            engine.allow(1000)
            waiter.join(60)
        assert finished[0].succeeded
    progresses = [progress for _state, progress in seen]
    assert progresses == sorted(progresses)
    assert seen[-1] == ("success", 100)
    assert transport.paths.count(RECORD_INFO) == 1


def test_cancel_fails_a_queued_task_and_refunds_it(make_settings: MakeSettings, sample_jpeg: bytes) -> None:
    with live_service(make_settings, InstantEngine(), workers=0) as live, live.client() as client:
        task_id = client.create_task(
            prompt="[Static shot]", image_url=client.upload_file(sample_jpeg).download_url
        )
        assert client.credits() == 1000 - PRICE
        canceled = client.cancel(task_id)
        assert (canceled.state, canceled.fail_code) == ("fail", "499")
        assert client.credits() == 1000
        with pytest.raises(TaskCanceledError) as raised:
            client.wait(task_id, timeout=10)
        assert raised.value.fail_code == "499"
        assert client.wait(task_id, raise_on_failure=False).credits_consumed == 0


def test_the_errors_of_a_real_server(make_settings: MakeSettings, sample_jpeg: bytes) -> None:
    sleeps: list[float] = []
    with live_service(make_settings, InstantEngine(), workers=0, create_task_rate_limit="3/minute") as live:
        with Client(live.base_url, "kn_not_a_key") as stranger, pytest.raises(AuthenticationError) as refused:
            stranger.credits()
        assert (refused.value.code, refused.value.message) == (401, "You do not have access permissions")

        with live.client(sleep=sleeps.append, rate_limit_retries=1) as client:
            image_url = client.upload_file(sample_jpeg).download_url
            with pytest.raises(NotFoundError, match="recordInfo is null"):
                client.get_task("0" * 32)
            with pytest.raises(ValidationError, match=r"input\.duration"):
                client.create_task(prompt="x", image_url=image_url, duration=7)
            client.create_task(prompt="x", image_url=image_url)  # the refused one counted too
            client.create_task(prompt="x", image_url=image_url)
            with pytest.raises(RateLimitError) as limited:
                client.create_task(prompt="x", image_url=image_url)
        assert limited.value.retry_after is not None
        assert limited.value.retry_after > 0
        assert len(sleeps) == 1  # one retry, after the pause the server asked for

        poor = Client(live.base_url, live.open_account(credits=10))
        with poor, pytest.raises(InsufficientCreditsError, match="Credits insufficient"):
            poor.create_task(prompt="x", image_url=image_url)


def test_the_async_client_in_process(make_settings: MakeSettings, sample_jpeg: bytes, tmp_path: Path) -> None:
    settings = make_settings(workers=1)
    with running_app(settings, engine=InstantEngine()) as running:
        key = running.api.key

        async def scenario() -> None:
            transport = httpx.ASGITransport(app=running.app)
            async with AsyncClient(settings.public_url, key, transport=transport) as client:
                uploaded = await client.upload_file(sample_jpeg, upload_path="async", file_name="photo.jpg")
                assert uploaded.file_path == "async/photo.jpg"
                task_id = await client.create_task(prompt="[Tilt up]", image_url=uploaded.download_url)
                states: list[str] = []
                task = await client.wait(task_id, timeout=60, on_update=lambda t: states.append(t.state))
                assert task.succeeded
                assert states[-1] == "success"
                video = await client.download(task, tmp_path / "async.mp4")
                assert is_mp4(video.read_bytes())

                second = await client.create_task(prompt="[Tilt down]", image_url=uploaded.download_url)
                polled = await client.wait(second, timeout=60, stream=False)
                assert polled.succeeded

                assert await client.credits() == 1000 - 2 * PRICE
                listed = [task.task_id async for task in client.iter_tasks(limit=5)]
                assert listed == [second, task_id]
                with pytest.raises(ValidationError, match="already finished"):
                    await client.cancel(task_id)
                with pytest.raises(NotFoundError):
                    await client.get_task("f" * 32)

        asyncio.run(scenario())
