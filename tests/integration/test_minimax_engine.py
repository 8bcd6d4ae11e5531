"""The minimax engine alone, against a MiniMax stand-in on loopback.

The engine waits on a hand-moved clock: its sleeper moves the clock instead of sleeping, so polls,
backoffs and rate-limit waits cost no time, and tests read them off the clock.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from tests.conftest import textured_image
from tests.support.clock import FakeClock
from tests.support.live import free_port
from tests.support.minimax import (
    API_KEY,
    VIDEO_FPS,
    VIDEO_FRAMES,
    VIDEO_SIZE,
    Call,
    FakeMinimax,
    fake_minimax,
)

from kinema.domain.errors import (
    EngineMisconfigured,
    GenerationCanceled,
    GenerationFailed,
    InvalidInput,
    KinemaError,
)
from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob, GenerationResult
from kinema.engines.minimax.client import CANCEL_CHECK_S
from kinema.engines.minimax.config import MinimaxConfig
from kinema.engines.minimax.engine import UPSTREAM_TASK_ID, MinimaxEngine
from kinema.engines.registry import load_engine
from kinema.store.database import Database
from kinema.store.gate import SqlRateGate

MODELS = {
    "hailuo/2-3-image-to-video-standard": "MiniMax-Hailuo-2.3",
    "hailuo/02-text-to-video-standard": "MiniMax-Hailuo-02",
}
PROMPT = "[Push in, Pan left] A lighthouse in a storm, waves crash on the rocks. [Static shot]"


class CountingGate:
    """A rate gate that lets every call through (or none), counting the turns taken."""

    def __init__(self, refuse: bool = False) -> None:
        self.turns = 0
        self.refuse = refuse

    def wait_turn(self, should_stop: Callable[[], bool], sleep: Callable[[float], bool]) -> bool:
        if self.refuse or should_stop():
            return False
        self.turns += 1
        return True


class HandTime:
    """The engine's clock and sleeper: a sleep moves the clock on at once."""

    def __init__(self) -> None:
        self.clock = FakeClock(start_ms=1_000_000)

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= CANCEL_CHECK_S, "waits go in steps that look for a cancel"
        self.clock.advance(round(seconds * 1000))

    def seconds(self) -> float:
        """The clock in seconds, for the stand-in's arrival times."""
        return self.clock() / 1000


def config_for(
    fake: FakeMinimax, gate: Any = None, *, hand_time: HandTime | None = None, **overrides: Any
) -> MinimaxConfig:
    """The engine's configuration, with the default waits (1 s backoff doubling to 30 s, 5 s after a
    rate limit) and a 10 s poll, all on `hand_time` (a clock of its own when none is given)."""
    hand_time = hand_time or HandTime()
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": fake.base_url,
        "poll_s": 10,
        "models": MODELS,
        "gate": gate or CountingGate(),
        "clock": hand_time.clock,
        "sleep": hand_time.sleep,
    }
    return MinimaxConfig(**(values | overrides))


@pytest.fixture
def hand_time() -> HandTime:
    return HandTime()


@pytest.fixture
def upstream(hand_time: HandTime) -> Iterator[FakeMinimax]:
    with fake_minimax(clock=hand_time.seconds) as fake:
        yield fake


def arrivals(calls: list[Call]) -> list[float]:
    """When each call arrived, in seconds after the first."""
    return [call.at - calls[0].at for call in calls]


@pytest.fixture
def engines() -> Iterator[Callable[[MinimaxConfig], MinimaxEngine]]:
    """Engines set up from a config, closed after the test."""
    made: list[MinimaxEngine] = []

    def make(config: MinimaxConfig) -> MinimaxEngine:
        engine = MinimaxEngine(config)
        engine.setup()
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close()


@pytest.fixture(scope="module")
def picture() -> NDArray[np.uint8]:
    return textured_image(640, 360, seed=5)


class Saved:
    """Stands in for the worker's `save_state`."""

    def __init__(self) -> None:
        self.states: list[dict[str, str]] = []

    def __call__(self, state: Mapping[str, str]) -> None:
        self.states.append(dict(state))


def job_for(
    tmp_path: Path,
    image: NDArray[np.uint8] | None,
    *,
    model: str = "hailuo/2-3-image-to-video-standard",
    resume: Mapping[str, str] | None = None,
    saved: Saved | None = None,
    **fields: Any,
) -> GenerationJob:
    return GenerationJob(
        prompt=PROMPT,
        image=image,
        duration_s=fields.pop("duration_s", 6),
        resolution=fields.pop("resolution", Resolution.P768),
        video_path=tmp_path / "out" / "video.mp4",
        model=model,
        resume=resume or {},
        save_state=saved or Saved(),
        **fields,
    )


def never() -> bool:
    return False


def mean_level(path: Path) -> float:
    still = cv2.imread(str(path))
    assert still is not None, path
    return float(still.mean())


def test_success_writes_the_video_and_its_stills(
    tmp_path: Path,
    upstream: FakeMinimax,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
) -> None:
    gate = CountingGate()
    engine = engines(config_for(upstream, gate))
    saved = Saved()
    progress: list[float] = []

    result = engine.generate(job_for(tmp_path, picture, saved=saved), progress.append, never)

    assert result == GenerationResult(
        tmp_path / "out" / "video.mp4",
        tmp_path / "out" / "video.first.jpg",
        tmp_path / "out" / "video.last.jpg",
        VIDEO_SIZE,
        VIDEO_FPS,
        VIDEO_FRAMES,
    )
    assert result.video_path.read_bytes() == upstream.video
    # The stills are the video's own first and last frames: it brightens from one to the other.
    assert mean_level(result.first_frame_path) < mean_level(result.last_frame_path) - 100
    assert sorted(path.name for path in result.video_path.parent.iterdir()) == [
        "video.first.jpg",
        "video.last.jpg",
        "video.mp4",
    ]
    # One submission, then a poll per status until Success.
    assert len(upstream.submissions) == 1
    task_id = upstream.polls[0].params["task_id"]
    assert saved.states == [{UPSTREAM_TASK_ID: task_id}]
    assert len(upstream.polls) == 5
    assert {call.params["task_id"] for call in upstream.polls} == {task_id}
    assert gate.turns == len(upstream.video_requests()) == 6
    # Progress follows the upstream status and ends at 1.0.
    assert progress == sorted(progress)
    assert progress[:2] == [0.05, 0.10]
    assert 0.3 <= progress[2] < 0.9
    assert progress[-1] == 1.0
    # The CDN never sees the API key.
    (download,) = upstream.of_kind("download")
    assert download.authorization is None


def test_the_request_body(
    tmp_path: Path,
    upstream: FakeMinimax,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
) -> None:
    engine = engines(config_for(upstream))
    job = job_for(tmp_path, picture, duration_s=10, options={"prompt_optimizer": "false"})
    engine.generate(job, lambda _: None, never)

    (submission,) = upstream.submissions
    assert submission.authorization == f"Bearer {API_KEY}"
    body = submission.body
    assert body is not None
    assert set(body) == {"model", "prompt", "first_frame_image", "duration", "resolution", "prompt_optimizer"}
    assert body["model"] == "MiniMax-Hailuo-2.3"
    assert body["prompt"] == PROMPT
    assert body["duration"] == 10
    assert isinstance(body["duration"], int)
    assert body["resolution"] == "768P"
    assert body["prompt_optimizer"] is False
    prefix = "data:image/jpeg;base64,"
    assert body["first_frame_image"].startswith(prefix)
    data = base64.b64decode(body["first_frame_image"][len(prefix) :], validate=True)
    sent = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert sent is not None
    assert sent.shape == picture.shape
    difference = np.abs(cv2.cvtColor(sent, cv2.COLOR_BGR2RGB).astype(int) - picture.astype(int))
    assert difference.mean() < 3  # the same picture, through JPEG at quality 95


def test_text_to_video_sends_no_image(
    tmp_path: Path, upstream: FakeMinimax, engines: Callable[[MinimaxConfig], MinimaxEngine]
) -> None:
    engine = engines(config_for(upstream))
    job = job_for(tmp_path, None, model="hailuo/02-text-to-video-standard", resolution=Resolution.P512)
    result = engine.generate(job, lambda _: None, never)

    assert result.frames == VIDEO_FRAMES
    (submission,) = upstream.submissions
    assert submission.body == {
        "model": "MiniMax-Hailuo-02",
        "prompt": PROMPT,
        "duration": 6,
        "resolution": "512P",
    }


@pytest.mark.parametrize(
    ("script", "error", "words"),
    [
        ({"codes": {"submit": [1004]}}, EngineMisconfigured, "MiniMax refused the API key (1004)"),
        ({"codes": {"submit": [2049]}}, EngineMisconfigured, "MiniMax refused the API key (2049)"),
        ({"codes": {"submit": [1008]}}, EngineMisconfigured, "balance is too low"),
        ({"codes": {"submit": [1026]}}, InvalidInput, "content check refused the prompt or image (1026)"),
        ({"codes": {"submit": [2013]}}, InvalidInput, "refused the request's parameters (2013)"),
        ({"codes": {"query": [1027]}}, GenerationFailed, "content check refused the generated video (1027)"),
        ({"statuses": ["Queueing", "Fail"]}, GenerationFailed, "internal model error"),
        ({"codes": {"query": [2013]}}, GenerationFailed, "MiniMax answered error 2013"),
        ({"api_key": "another-key"}, EngineMisconfigured, "MiniMax refused the API key (1004)"),
    ],
)
def test_each_upstream_refusal_maps_to_its_error(
    tmp_path: Path,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
    script: dict[str, Any],
    error: type[KinemaError],
    words: str,
) -> None:
    with fake_minimax(**script) as fake:
        engine = engines(config_for(fake))
        with pytest.raises(KinemaError) as raised:
            engine.generate(job_for(tmp_path, picture), lambda _: None, never)
    assert type(raised.value) is error
    assert words in raised.value.message
    assert API_KEY not in raised.value.message
    assert not (tmp_path / "out" / "video.mp4").exists()


def test_a_video_that_cannot_be_read_fails_the_generation(
    tmp_path: Path, engines: Callable[[MinimaxConfig], MinimaxEngine], picture: NDArray[np.uint8]
) -> None:
    with fake_minimax(video=b"not a video" * 100) as fake:
        engine = engines(config_for(fake))
        with pytest.raises(GenerationFailed) as failed:
            engine.generate(job_for(tmp_path, picture), lambda _: None, never)
    assert failed.value.message.startswith("MiniMax's video could not be read: ")
    assert not (tmp_path / "out" / "video.first.jpg").exists()


def test_a_key_echoed_by_the_upstream_is_scrubbed(
    tmp_path: Path, engines: Callable[[MinimaxConfig], MinimaxEngine], picture: NDArray[np.uint8]
) -> None:
    with fake_minimax(codes={"submit": [2049]}, messages={2049: f"invalid api key {API_KEY}"}) as fake:
        engine = engines(config_for(fake))
        with pytest.raises(EngineMisconfigured) as raised:
            engine.generate(job_for(tmp_path, picture), lambda _: None, never)
    assert API_KEY not in raised.value.message
    assert raised.value.message == "MiniMax refused the API key (2049): invalid api key ***"


def test_a_burst_of_rate_limits_is_waited_out(
    tmp_path: Path,
    hand_time: HandTime,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
) -> None:
    script: dict[str, Any] = {"codes": {"submit": [1002, 1002, 1002], "query": [1002, 1002]}}
    with fake_minimax(clock=hand_time.seconds, **script) as fake:
        gate = CountingGate()
        engine = engines(config_for(fake, gate, hand_time=hand_time))
        result = engine.generate(job_for(tmp_path, picture), lambda _: None, never)
    assert result.frames == VIDEO_FRAMES
    assert len(fake.submissions) == 4  # three refused, one accepted
    assert arrivals(fake.submissions) == [0, 5, 10, 15]  # each refusal waited out for 5 s
    assert len(fake.tasks) == 1
    assert len(fake.polls) == 5 + 2
    assert gate.turns == 4 + 7  # every try takes a turn


def test_network_errors_are_retried(
    tmp_path: Path,
    hand_time: HandTime,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
) -> None:
    faults: dict[str, list[int | str]] = {
        "submit": [503, "drop"],
        "query": [502, "drop", 429],
        "retrieve": [500],
        "download": [503, "drop"],
    }
    with fake_minimax(clock=hand_time.seconds, faults=faults) as fake:
        engine = engines(config_for(fake, hand_time=hand_time))
        result = engine.generate(job_for(tmp_path, picture), lambda _: None, never)
        assert result.video_path.read_bytes() == fake.video
    assert len(fake.submissions) == 3
    assert len(fake.tasks) == 1
    assert len(fake.polls) == 5 + 3
    # Each failure in a row waits twice as long as the one before; a success starts again at 1 s.
    assert arrivals(fake.submissions) == [0, 1, 3]
    assert arrivals(fake.polls)[:5] == [0, 1, 3, 7, 17]


def test_an_unreachable_upstream_is_retried_until_canceled(
    tmp_path: Path,
    hand_time: HandTime,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fake_minimax() as fake:
        config = replace(config_for(fake, hand_time=hand_time), base_url=f"http://127.0.0.1:{free_port()}")
    engine = engines(config)
    stop_at = hand_time.clock() + 60_000
    with (
        caplog.at_level(logging.WARNING, logger="kinema.engines.minimax"),
        pytest.raises(GenerationCanceled),
    ):
        engine.generate(job_for(tmp_path, picture), lambda _: None, lambda: hand_time.clock() >= stop_at)
    # Tried again and again, the waits doubling up to their cap, until the cancel cut one short.
    waits = [record.getMessage().rpartition("retrying in ")[2] for record in caplog.records]
    assert waits == ["1 s", "2 s", "4 s", "8 s", "16 s", "30 s"]
    assert 0 <= hand_time.clock() - stop_at <= CANCEL_CHECK_S * 1000


def test_a_resumed_task_is_polled_not_submitted_again(
    tmp_path: Path,
    upstream: FakeMinimax,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
) -> None:
    earlier = upstream.create_task()
    upstream.tasks[earlier] = 2  # Preparing and Queueing were seen by the worker that died
    saved = Saved()
    engine = engines(config_for(upstream))
    job = job_for(tmp_path, picture, resume={UPSTREAM_TASK_ID: earlier}, saved=saved)
    result = engine.generate(job, lambda _: None, never)

    assert result.video_path.read_bytes() == upstream.video
    assert upstream.submissions == []
    assert [call.params["task_id"] for call in upstream.polls] == [earlier] * 3
    assert saved.states == []


def test_cancel_stops_within_a_poll(
    tmp_path: Path,
    hand_time: HandTime,
    upstream: FakeMinimax,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
) -> None:
    upstream.hold = True
    # A long poll interval: the cancel must cut the wait short, not wait it out.
    engine = engines(config_for(upstream, hand_time=hand_time, poll_s=30))
    canceled_at: list[int] = []

    def should_cancel() -> bool:
        if not canceled_at and upstream.submissions:
            canceled_at.append(hand_time.clock() + 5_000)  # 5 s into the wait before the first poll
        return bool(canceled_at) and hand_time.clock() >= canceled_at[0]

    with pytest.raises(GenerationCanceled):
        engine.generate(job_for(tmp_path, picture), lambda _: None, should_cancel)
    assert 0 <= hand_time.clock() - canceled_at[0] <= CANCEL_CHECK_S * 1000
    assert upstream.polls == []
    assert not (tmp_path / "out" / "video.mp4").exists()


def test_every_request_waits_its_turn_at_the_gate(
    tmp_path: Path, upstream: FakeMinimax, engines: Callable[[MinimaxConfig], MinimaxEngine]
) -> None:
    engine = engines(config_for(upstream, CountingGate(refuse=True)))
    with pytest.raises(GenerationCanceled):
        engine.generate(job_for(tmp_path, textured_image(640, 360)), lambda _: None, never)
    assert upstream.calls == []


def test_a_shared_gate_holds_the_rate(
    tmp_path: Path,
    db: Database,
    hand_time: HandTime,
    engines: Callable[[MinimaxConfig], MinimaxEngine],
    picture: NDArray[np.uint8],
) -> None:
    with fake_minimax(clock=hand_time.seconds, statuses=["Processing", "Success"]) as fake:
        # The gate and the engine share the clock: the engine's waits move the gate's window.
        gate = SqlRateGate(db, "minimax", 2, 60_000, hand_time.clock)
        engine = engines(config_for(fake, gate, hand_time=hand_time))
        stop_at: list[int] = []

        def should_cancel() -> bool:
            if not stop_at and len(fake.video_requests()) >= 2:
                stop_at.append(hand_time.clock() + 30_000)
            return bool(stop_at) and hand_time.clock() >= stop_at[0]

        with pytest.raises(GenerationCanceled, match="rate limit"):
            engine.generate(job_for(tmp_path, picture), lambda _: None, should_cancel)
    # Two turns in the minute: the submission and, 10 s later, one poll; the next poll, due
    # 10 s after that, was still waiting for the window 30 s later.
    assert len(fake.video_requests()) == 2
    assert arrivals(fake.video_requests()) == [0, 10]


def test_an_unmapped_model_is_a_misconfiguration(
    tmp_path: Path, upstream: FakeMinimax, engines: Callable[[MinimaxConfig], MinimaxEngine]
) -> None:
    engine = engines(config_for(upstream))
    job = job_for(tmp_path, textured_image(640, 360), model="hailuo/2-3-image-to-video-pro")
    with pytest.raises(EngineMisconfigured, match="no MiniMax model is configured"):
        engine.generate(job, lambda _: None, never)
    assert upstream.calls == []


def test_the_registry_builds_it(upstream: FakeMinimax) -> None:
    engine = load_engine("minimax", config_for(upstream))
    assert isinstance(engine, MinimaxEngine)
    assert engine.info.name == "minimax"
    assert engine.info.generates_content
    assert engine.info.durations == {6, 10}
    assert {r.value for r in engine.info.resolutions} == {"512P", "768P", "1080P"}
