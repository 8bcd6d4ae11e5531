"""The SDK against a stand-in for any server that speaks the contract (an httpx.MockTransport):
every answer code becomes its exception, 429 waits as told, and waiting polls on schedule or
follows the live stream where there is one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from kinema.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    FeatureDisabledError,
    GenerationFailedError,
    InsufficientCreditsError,
    KinemaAPIError,
    KinemaConnectionError,
    MaintenanceError,
    MissingAPIKeyError,
    NotFoundError,
    RateLimitError,
    ServerError,
    Task,
    TaskCanceledError,
    TaskState,
    UnexpectedResponseError,
    ValidationError,
    WaitTimeoutError,
    published_backoff,
)
from kinema.client.wire import EventStreamDecoder, retry_after_s

BASE = "http://kinema.test"
TASK_ID = "a" * 32
RECORD_INFO = "/api/v1/jobs/recordInfo"
STREAM = "/api/v1/jobs/stream"
CREDIT = "/api/v1/chat/credit"

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(
    code: int = 200,
    msg: str = "success",
    data: Any = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": msg, "data": data}, headers=headers)


def record(state: str, progress: int = 0, **fields: Any) -> dict[str, Any]:
    done = state in ("success", "fail")
    return {
        "taskId": TASK_ID,
        "model": "hailuo/2-3-image-to-video-standard",
        "state": state,
        "param": json.dumps({"model": "hailuo/2-3-image-to-video-standard", "input": {"prompt": "a lake"}}),
        "resultJson": "",
        "failCode": "",
        "failMsg": "",
        "costTime": 0,
        "creditsConsumed": 0,
        "progress": progress,
        "createTime": 1765182986510,
        "updateTime": 1765182986510,
        "completeTime": 1765182988660 if done else None,
    } | fields


SUCCESS = record(
    "success",
    100,
    resultJson=json.dumps({"resultUrls": [f"{BASE}/files/video.mp4?sig=1"]}),
    firstFrameUrl=f"{BASE}/files/first.jpg",
    lastFrameUrl=f"{BASE}/files/last.jpg",
    costTime=2150,
    creditsConsumed=30,
)


@dataclass
class ContractServer:
    """Answers by path, as scripted; a path with no script is a real HTTP 404, as the contract says."""

    routes: dict[str, Handler] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.routes.get(request.url.path)
        if handler is None:
            return envelope(404, "Not Found", status=404)
        return handler(request)

    def script(self, path: str, *answers: httpx.Response) -> None:
        """Answer `path` with these in turn, then the last one for ever."""
        queue = list(answers)

        def answer(_request: httpx.Request) -> httpx.Response:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self.routes[path] = answer

    def calls(self, path: str) -> int:
        return sum(1 for request in self.requests if request.url.path == path)


@dataclass
class FakeTime:
    """A monotonic clock that only sleeping moves."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def server() -> ContractServer:
    return ContractServer()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def client_for(server: ContractServer, fake_time: FakeTime | None = None, **options: Any) -> Client:
    clock = fake_time or FakeTime()
    return Client(
        BASE,
        "kn_test",
        transport=httpx.MockTransport(server),
        sleep=clock.sleep,
        clock=clock.clock,
        **options,
    )


# Every code, its exception.

CODES = [
    (400, "taskId parameter is required", ValidationError),
    (401, "You do not have access permissions", AuthenticationError),
    (402, "Credits insufficient", InsufficientCreditsError),
    (404, "Not Found", NotFoundError),
    (422, 'input.duration must be one of "6", "10"', ValidationError),
    (422, "recordInfo is null", NotFoundError),
    (455, "The service is under maintenance", MaintenanceError),
    (500, "internal server error", ServerError),
    (501, "generation failed", GenerationFailedError),
    (505, "This feature is currently disabled", FeatureDisabledError),
    (503, "upstream unavailable", ServerError),
]


@pytest.mark.parametrize("strict", [False, True], ids=["compat", "strict"])
@pytest.mark.parametrize(("code", "msg", "expected"), CODES)
def test_each_code_raises_its_exception_with_code_and_message(
    server: ContractServer, code: int, msg: str, expected: type[KinemaAPIError], strict: bool
) -> None:
    server.script(RECORD_INFO, envelope(code, msg, status=code if strict else 200))
    with client_for(server) as client, pytest.raises(expected) as raised:
        client.get_task(TASK_ID)
    assert (raised.value.code, raised.value.message) == (code, msg)
    assert raised.value.http_status == (code if strict else 200)
    assert msg in str(raised.value)


def test_an_unknown_code_is_the_base_error(server: ContractServer) -> None:
    server.script(CREDIT, envelope(418, "I'm a teapot"))
    with client_for(server) as client, pytest.raises(KinemaAPIError) as raised:
        client.credits()
    assert type(raised.value) is KinemaAPIError
    assert raised.value.code == 418


def test_answers_that_are_not_envelopes(server: ContractServer) -> None:
    server.script(CREDIT, httpx.Response(502, text="<html>Bad Gateway</html>"))
    server.script(RECORD_INFO, httpx.Response(200, text="<html>hello</html>"))
    with client_for(server) as client:
        with pytest.raises(ServerError) as raised:
            client.credits()
        assert (raised.value.code, raised.value.http_status) == (502, 502)
        with pytest.raises(UnexpectedResponseError):
            client.get_task(TASK_ID)


def test_the_uploads_envelope_with_success_false(server: ContractServer, tmp_path: Path) -> None:
    refused = {"success": False, "code": 422, "msg": "uploadPath is required", "data": None}
    server.script("/api/file-stream-upload", httpx.Response(200, json=refused))
    with client_for(server) as client, pytest.raises(ValidationError, match="uploadPath is required"):
        client.upload_file(b"\xff\xd8\xff data", upload_path="")


# Rate limits.


def test_429_waits_as_long_as_retry_after_says_then_retries(
    server: ContractServer, fake_time: FakeTime
) -> None:
    slow_down = {"Retry-After": "7"}
    server.script(
        CREDIT,
        envelope(429, "Too many requests", status=429, headers=slow_down),
        envelope(429, "Too many requests", status=429, headers={"Retry-After": "3"}),
        envelope(data=970),
    )
    with client_for(server, fake_time) as client:
        assert client.credits() == 970
    assert fake_time.sleeps == [7.0, 3.0]
    assert server.calls(CREDIT) == 3


def test_429_gives_up_after_the_retries(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(CREDIT, envelope(429, "Too many requests", status=429, headers={"Retry-After": "2"}))
    with (
        client_for(server, fake_time, rate_limit_retries=2) as client,
        pytest.raises(RateLimitError) as raised,
    ):
        client.credits()
    assert raised.value.retry_after == 2.0
    assert fake_time.sleeps == [2.0, 2.0]
    assert server.calls(CREDIT) == 3


def test_429_without_retry_after_waits_a_second(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(CREDIT, envelope(429, "Too many requests", status=429), envelope(data=1))
    with client_for(server, fake_time) as client:
        assert client.credits() == 1
    assert fake_time.sleeps == [1.0]


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after_s("5") == 5.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None


def test_createtask_is_retried_after_429_and_sends_the_same_body(
    server: ContractServer, fake_time: FakeTime
) -> None:
    server.script(
        "/api/v1/jobs/createTask",
        envelope(429, "Too many requests", status=429, headers={"Retry-After": "1"}),
        envelope(data={"taskId": TASK_ID}),
    )
    with client_for(server, fake_time) as client:
        task_id = client.create_task(
            prompt="[Push in] a lake",
            image_url="https://images.example/lake.jpg",
            duration=6,
            resolution="768P",
            idempotency_key="order-1",
            prompt_optimizer=True,
        )
    assert task_id == TASK_ID
    first, second = server.requests
    assert first.content == second.content
    assert json.loads(second.content) == {
        "model": "hailuo/2-3-image-to-video-standard",
        "input": {
            "prompt": "[Push in] a lake",
            "image_url": "https://images.example/lake.jpg",
            "duration": "6",
            "resolution": "768P",
            "prompt_optimizer": True,
        },
    }
    assert second.headers["Idempotency-Key"] == "order-1"
    assert second.headers["Authorization"] == "Bearer kn_test"


# Configuration and transport failures.


def test_key_and_base_url_come_from_the_environment(
    server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINEMA_BASE_URL", "http://elsewhere.test:8123/")
    monkeypatch.setenv("KINEMA_API_KEY", "kn_from_env")
    server.script(CREDIT, envelope(data=5))
    with Client(transport=httpx.MockTransport(server)) as client:
        assert client.base_url == "http://elsewhere.test:8123"
        assert client.credits() == 5
    (request,) = server.requests
    assert str(request.url) == "http://elsewhere.test:8123/api/v1/chat/credit"
    assert request.headers["Authorization"] == "Bearer kn_from_env"


def test_no_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KINEMA_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="KINEMA_API_KEY"):
        Client("http://kinema.test")


def test_a_refused_connection_says_where_and_why() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = Client("http://127.0.0.1:9", "kn_x", transport=httpx.MockTransport(refuse))
    with client, pytest.raises(KinemaConnectionError) as raised:
        client.credits()
    assert str(raised.value) == "cannot reach http://127.0.0.1:9: connection refused"
    assert isinstance(raised.value, ConnectionError)


def test_a_timeout_says_so() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = Client(BASE, "kn_x", transport=httpx.MockTransport(hang))
    with client, pytest.raises(KinemaConnectionError, match="did not answer in time"):
        client.credits()


# Waiting: the polling schedule.


def test_the_published_backoff() -> None:
    assert [published_backoff(s) for s in (0, 29.9, 30, 119.9, 120, 3600)] == [2, 2, 5, 5, 10, 10]


def test_wait_polls_2_s_then_5_s_then_10_s_when_there_is_no_stream(
    server: ContractServer, fake_time: FakeTime
) -> None:
    def record_info(_request: httpx.Request) -> httpx.Response:
        if fake_time.now >= 150:
            return envelope(data=SUCCESS)
        return envelope(data=record("generating", min(99, int(fake_time.now / 2))))

    server.routes[RECORD_INFO] = record_info
    with client_for(server, fake_time) as client:
        task = client.wait(TASK_ID)
        assert task.state == TaskState.SUCCESS
        assert fake_time.sleeps == [2.0] * 15 + [5.0] * 18 + [10.0] * 3
        assert server.calls(STREAM) == 1  # asked once, answered 404: never asked again
        fake_time.sleeps.clear()
        client.wait(TASK_ID)
    assert server.calls(STREAM) == 1
    assert fake_time.sleeps == []


def test_the_poll_schedule_is_injectable(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(
        RECORD_INFO,
        envelope(data=record("queuing")),
        envelope(data=record("queuing")),
        envelope(data=SUCCESS),
    )
    with client_for(server, fake_time, poll_schedule=lambda elapsed: 0.25 + elapsed) as client:
        client.wait(TASK_ID, stream=False)
    assert fake_time.sleeps == [0.25, 0.5]
    assert server.calls(STREAM) == 0


def test_a_stream_route_that_answers_json_means_polling(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(RECORD_INFO, envelope(data=record("waiting")), envelope(data=SUCCESS))
    server.script(STREAM, envelope(data=record("waiting")))
    with client_for(server, fake_time) as client:
        assert client.wait(TASK_ID).succeeded
    assert fake_time.sleeps == [2.0]


def test_wait_gives_up_at_its_timeout(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(RECORD_INFO, envelope(data=record("generating", 40)))
    with client_for(server, fake_time) as client, pytest.raises(WaitTimeoutError) as raised:
        client.wait(TASK_ID, timeout=5)
    assert fake_time.sleeps == [2.0, 2.0, 1.0]
    assert raised.value.task.progress == 40
    assert isinstance(raised.value, TimeoutError)


def test_wait_raises_the_tasks_failure(server: ContractServer, fake_time: FakeTime) -> None:
    failed = record("fail", failCode="422", failMsg="input.image_url: image is too small")
    server.script(RECORD_INFO, envelope(data=failed))
    with client_for(server, fake_time) as client:
        with pytest.raises(GenerationFailedError) as raised:
            client.wait(TASK_ID)
        assert (raised.value.fail_code, raised.value.message) == (
            "422",
            "input.image_url: image is too small",
        )
        assert raised.value.task is not None
        assert raised.value.task.task_id == TASK_ID
        task = client.wait(TASK_ID, raise_on_failure=False)
    assert (task.state, task.fail_code) == ("fail", "422")


def test_a_canceled_task_is_its_own_failure(server: ContractServer) -> None:
    server.script(RECORD_INFO, envelope(data=record("fail", failCode="499", failMsg="canceled by the owner")))
    with client_for(server) as client, pytest.raises(TaskCanceledError) as raised:
        client.wait(TASK_ID)
    assert raised.value.fail_code == "499"


# Waiting: the live stream.


def event_stream(*events: tuple[str, dict[str, Any]]) -> httpx.Response:
    text = ": hello\n\n" + "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)
    return httpx.Response(200, text=text, headers={"Content-Type": "text/event-stream; charset=utf-8"})


def test_wait_follows_the_stream_without_polling(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(RECORD_INFO, envelope(data=record("waiting")))
    server.script(
        STREAM,
        event_stream(
            ("state", {"taskId": TASK_ID, "state": "waiting", "progress": 0}),
            ("state", {"taskId": TASK_ID, "state": "generating", "progress": 40}),
            ("state", {"taskId": TASK_ID, "state": "success", "progress": 100}),
            ("record", SUCCESS),
        ),
    )
    seen: list[tuple[str, int]] = []
    with client_for(server, fake_time) as client:
        task = client.wait(TASK_ID, on_update=lambda t: seen.append((t.state, t.progress)))
    assert seen == [("waiting", 0), ("generating", 40), ("success", 100)]
    assert task == Task.from_wire(SUCCESS)
    assert server.calls(RECORD_INFO) == 1
    assert fake_time.sleeps == []
    stream_request = next(request for request in server.requests if request.url.path == STREAM)
    assert stream_request.url.params["taskId"] == TASK_ID
    assert stream_request.headers["Authorization"] == "Bearer kn_test"


def test_a_stream_that_ends_early_is_followed_by_polling(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(
        RECORD_INFO,
        envelope(data=record("queuing")),
        envelope(data=record("generating")),
        envelope(data=SUCCESS),
    )
    server.script(STREAM, event_stream(("state", {"taskId": TASK_ID, "state": "queuing", "progress": 0})))
    with client_for(server, fake_time) as client:
        assert client.wait(TASK_ID).succeeded
    assert fake_time.sleeps == [2.0]
    assert server.calls(RECORD_INFO) == 3


def test_a_refused_stream_raises_its_error(server: ContractServer) -> None:
    server.script(RECORD_INFO, envelope(data=record("queuing")))
    server.script(STREAM, envelope(401, "You do not have access permissions"))
    with client_for(server) as client, pytest.raises(AuthenticationError):
        client.wait(TASK_ID)


def test_the_event_stream_decoder() -> None:
    decoder = EventStreamDecoder()
    lines = [": keep-alive", "", "event: state", 'data: {"a":', "data: 1}", "", "data: plain", "", ""]
    events = [event for line in lines if (event := decoder.feed(line)) is not None]
    assert [(event.event, event.data) for event in events] == [("state", '{"a":\n1}'), ("message", "plain")]


# What the answers are read into.


def test_a_task_reads_its_json_strings() -> None:
    task = Task.from_wire(SUCCESS)
    assert task.video_url == f"{BASE}/files/video.mp4?sig=1"
    assert task.result_urls == (f"{BASE}/files/video.mp4?sig=1",)
    assert (task.first_frame_url, task.last_frame_url) == (
        f"{BASE}/files/first.jpg",
        f"{BASE}/files/last.jpg",
    )
    assert task.param["input"]["prompt"] == task.prompt == "a lake"
    assert (task.cost_time_ms, task.credits_consumed, task.progress) == (2150, 30, 100)
    assert task.complete_time == 1765182988660
    assert task.is_finished
    assert task.succeeded
    pending = Task.from_wire(record("waiting"))
    assert (pending.result_urls, pending.video_url, pending.complete_time) == ((), None, None)
    assert not pending.is_finished


def test_uploads_go_multipart_or_by_url(server: ContractServer, tmp_path: Path) -> None:
    uploaded = {
        "fileName": "photo.jpg",
        "filePath": "images/photo.jpg",
        "downloadUrl": f"{BASE}/files/uploads/photo.jpg?sig=1",
        "fileSize": 9,
        "mimeType": "image/jpeg",
        "uploadedAt": "2026-01-01T12:00:00.000Z",
    }
    answer = httpx.Response(
        200, json={"success": True, "code": 200, "msg": "File uploaded successfully", "data": uploaded}
    )
    server.script("/api/file-stream-upload", answer)
    server.script("/api/file-url-upload", answer)
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff data")
    with client_for(server) as client:
        by_path = client.upload_file(tmp_path / "photo.jpg", upload_path="images")
        client.upload_file("https://images.example/photo.jpg", upload_path="images", file_name="p.jpg")
    assert (by_path.download_url, by_path.file_size) == (uploaded["downloadUrl"], 9)
    multipart, by_url = server.requests
    assert multipart.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="uploadPath"\r\n\r\nimages' in multipart.content
    assert b'filename="photo.jpg"' in multipart.content
    assert json.loads(by_url.content) == {
        "fileUrl": "https://images.example/photo.jpg",
        "uploadPath": "images",
        "fileName": "p.jpg",
    }


# The asyncio client: the same rules.


def test_the_async_client_maps_codes_retries_and_streams(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(
        CREDIT,
        envelope(429, "Too many requests", status=429, headers={"Retry-After": "4"}),
        envelope(402, "Credits insufficient"),
    )
    server.script(RECORD_INFO, envelope(data=record("queuing")))
    server.script(
        STREAM,
        event_stream(
            ("state", {"taskId": TASK_ID, "state": "generating", "progress": 10}), ("record", SUCCESS)
        ),
    )
    seen: list[str] = []

    async def on_update(task: Task) -> None:
        seen.append(task.state)

    async def scenario() -> Task:
        transport = httpx.MockTransport(server)
        async with AsyncClient(
            BASE, "kn_test", transport=transport, sleep=fake_time.async_sleep, clock=fake_time.clock
        ) as client:
            with pytest.raises(InsufficientCreditsError):
                await client.credits()
            return await client.wait(TASK_ID, on_update=on_update)

    task = asyncio.run(scenario())
    assert task.succeeded
    assert seen == ["queuing", "generating", "success"]
    assert fake_time.sleeps == [4.0]


def test_the_async_client_polls_on_schedule(server: ContractServer, fake_time: FakeTime) -> None:
    server.script(
        RECORD_INFO,
        envelope(data=record("queuing")),
        envelope(data=record("generating")),
        envelope(data=SUCCESS),
    )

    async def scenario() -> Task:
        async with AsyncClient(
            BASE,
            "kn_test",
            transport=httpx.MockTransport(server),
            sleep=fake_time.async_sleep,
            clock=fake_time.clock,
        ) as client:
            return await client.wait(TASK_ID)

    assert asyncio.run(scenario()).succeeded
    assert fake_time.sleeps == [2.0, 2.0]
