"""The minimax engine: the real Hailuo models, generated on MiniMax's servers through their API.

One generation is one upstream task. It is submitted once, and its id is saved on the Kinema
task at once (`GenerationJob.save_state`), so a worker that restarts after a crash resumes
polling the same upstream task instead of paying for a second one. The task is polled every
``poll_s`` until it ends; the video is then downloaded from MiniMax's CDN, and its first and
last frames are read from it with PyAV.

Every submission and poll first takes a turn on the configured rate gate, which every worker
shares through the database, so that all of them together stay under MiniMax's limit (5 video
requests a minute by default). Answers carry ``base_resp.status_code``; `refusal` turns each
code into the error the worker reports (its failCode). Network failures, HTTP 5xx and MiniMax's
own transient errors are retried with exponential backoff until the task is canceled or runs
past its deadline, both of which `should_cancel` reports.
"""

from __future__ import annotations

import base64
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Final

import av
import cv2
import httpx
import numpy as np
from numpy.typing import NDArray

from kinema import __version__
from kinema.domain.errors import (
    EngineMisconfigured,
    GenerationCanceled,
    GenerationFailed,
    InvalidInput,
    KinemaError,
)
from kinema.domain.video import Capability, FrameSize, Resolution
from kinema.engines.base import (
    CancelCheck,
    EngineInfo,
    GenerationJob,
    GenerationResult,
    ProgressCallback,
    check_job,
)
from kinema.engines.minimax_config import MinimaxConfig
from kinema.media.encode import write_still

log = logging.getLogger("kinema.engines.minimax")

INFO = EngineInfo(
    name="minimax",
    capabilities=frozenset({Capability.IMAGE_TO_VIDEO, Capability.TEXT_TO_VIDEO}),
    resolutions=frozenset({Resolution.P512, Resolution.P768, Resolution.P1080}),
    durations=frozenset({6, 10}),
    generates_content=True,
    description=(
        "The real Hailuo models (2.3 and 02), generated on MiniMax's servers through their API. "
        "Needs a MiniMax API key; MiniMax bills each video to that key's account."
    ),
)

#: The key under which the upstream task id is saved on the Kinema task, for resuming.
UPSTREAM_TASK_ID: Final = "upstream_task_id"

SUBMIT_PATH: Final = "/v1/video_generation"
QUERY_PATH: Final = "/v1/query/video_generation"
RETRIEVE_PATH: Final = "/v1/files/retrieve"


class UpstreamStatus(StrEnum):
    """Where an upstream task stands, as MiniMax's query answers it."""

    PREPARING = "Preparing"  #: Accepted; MiniMax is getting it ready.
    QUEUEING = "Queueing"  #: Waiting for MiniMax's capacity.
    PROCESSING = "Processing"  #: Being generated.
    SUCCESS = "Success"  #: Done; the answer names the video's file.
    FAIL = "Fail"  #: MiniMax gave up on it.


class StatusCode(IntEnum):
    """``base_resp.status_code`` values that the engine treats specially."""

    OK = 0  #: Success.
    UNKNOWN_ERROR = 1000  #: MiniMax's own hiccup; retried.
    TIMEOUT = 1001  #: MiniMax timed out; retried.
    RATE_LIMITED = 1002  #: Too many requests a minute; waited out.
    AUTH_FAILED = 1004  #: The API key was refused.
    INSUFFICIENT_BALANCE = 1008  #: The MiniMax account cannot pay for the video.
    INTERNAL_ERROR = 1013  #: MiniMax's internal service error; retried.
    SENSITIVE_INPUT = 1026  #: The prompt or image failed MiniMax's content check.
    SENSITIVE_OUTPUT = 1027  #: The generated video failed MiniMax's content check.
    TOKEN_RATE_LIMITED = 1039  #: Too many tokens a minute; waited out like 1002.
    INVALID_PARAMETERS = 2013  #: The request broke one of MiniMax's rules.
    INVALID_KEY = 2049  #: The API key is not a valid key.


_RATE_LIMITED: Final = frozenset({StatusCode.RATE_LIMITED, StatusCode.TOKEN_RATE_LIMITED})
_TRANSIENT: Final = frozenset({StatusCode.UNKNOWN_ERROR, StatusCode.TIMEOUT, StatusCode.INTERNAL_ERROR})

#: Progress reported while the upstream task is in each state; Processing then rises toward
#: `_PROCESSING_END` with a time constant of `_PROCESSING_TAU_S` (Hailuo takes a few minutes),
#: and the download fills the rest.
_STATUS_PROGRESS: Final = {
    UpstreamStatus.PREPARING: 0.05,
    UpstreamStatus.QUEUEING: 0.10,
    UpstreamStatus.PROCESSING: 0.30,
}
_PROCESSING_END: Final = 0.90
_PROCESSING_TAU_S: Final = 90.0
_DOWNLOADED: Final = 0.98

#: How often a wait looks at `should_cancel`, so a cancel is seen within this long.
_CANCEL_CHECK_S: Final = 0.2
_JPEG_QUALITY: Final = 95
#: Larger first frames are scaled down before they are sent: Hailuo's output is at most 1920 px
#: long, and MiniMax refuses images over 20 MB, which a huge image at quality 95 can exceed.
_MAX_IMAGE_SIDE: Final = 4096
_DOWNLOAD_CHUNK: Final = 1 << 20


def refusal(code: int, message: str, *, submitting: bool) -> KinemaError:
    """The error for an upstream answer that ends the generation.

    A refused key (1004, 2049) or an empty MiniMax balance (1008) means no task can succeed
    until the operator acts, so both are `EngineMisconfigured`: the task fails with code 500
    and `/readyz` reports the engine degraded until a generation succeeds again.
    """
    if code in (StatusCode.AUTH_FAILED, StatusCode.INVALID_KEY):
        return EngineMisconfigured(f"MiniMax refused the API key ({code}): {message}")
    if code == StatusCode.INSUFFICIENT_BALANCE:
        return EngineMisconfigured(
            f"the MiniMax account's balance is too low to pay for the video ({code}): {message}"
        )
    if code == StatusCode.SENSITIVE_INPUT:
        return InvalidInput(f"MiniMax's content check refused the prompt or image ({code}): {message}")
    if code == StatusCode.SENSITIVE_OUTPUT:
        return GenerationFailed(f"MiniMax's content check refused the generated video ({code}): {message}")
    if code == StatusCode.INVALID_PARAMETERS and submitting:
        return InvalidInput(f"MiniMax refused the request's parameters ({code}): {message}")
    # 2013 while polling means MiniMax no longer knows a task it gave us: not the input's fault.
    return GenerationFailed(f"MiniMax answered error {code}: {message}")


def first_frame_data_url(image: NDArray[np.uint8]) -> str:
    """The input image as MiniMax takes it inline: a JPEG data URL."""
    height, width = image.shape[:2]
    scale = _MAX_IMAGE_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise KinemaError("could not encode the input image as JPEG for MiniMax")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def submission_body(job: GenerationJob, upstream_model: str) -> dict[str, Any]:
    """The JSON body of ``POST /v1/video_generation`` for a job; the prompt goes unchanged."""
    body: dict[str, Any] = {
        "model": upstream_model,
        "prompt": job.prompt,
        "duration": job.duration_s,
        "resolution": job.resolution.value,
    }
    if job.image is not None:
        body["first_frame_image"] = first_frame_data_url(job.image)
    optimizer = job.options.get("prompt_optimizer")
    if optimizer is not None:
        body["prompt_optimizer"] = optimizer.strip().lower() in ("true", "1", "yes")
    return body


class MinimaxEngine:
    """Hailuo through MiniMax's API; one instance serves every generation thread of a worker."""

    info = INFO

    def __init__(self, config: MinimaxConfig) -> None:
        self.config = config
        self._client: httpx.Client | None = None

    def setup(self) -> None:
        """Open the HTTP client (a connection pool shared by every generation); no request is made."""
        if self._client is None:
            self._client = httpx.Client(
                timeout=httpx.Timeout(self.config.read_timeout_s, connect=self.config.connect_timeout_s),
                headers={"User-Agent": f"kinema/{__version__}"},
            )

    def close(self) -> None:
        """Close the HTTP client's connections; `setup` opens a new one."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        if self._client is None:
            raise RuntimeError("MinimaxEngine.setup() must be called before generate()")
        upstream_model = self.config.models.get(job.model)
        if upstream_model is None:
            raise EngineMisconfigured(f"no MiniMax model is configured for {job.model or 'this job'!r}")
        return _Generation(self.config, self._client, job, on_progress, should_cancel).run(upstream_model)


class _Retry(Exception):
    """A failure worth retrying after a wait: the network, HTTP 5xx or 429, a garbled answer."""


@dataclass(frozen=True, slots=True)
class _VideoFacts:
    size: FrameSize
    fps: int
    frames: int
    first: NDArray[np.uint8]
    last: NDArray[np.uint8]


class _Generation:
    """One job's conversation with MiniMax: submit (or resume), poll, download, read the frames."""

    def __init__(
        self,
        config: MinimaxConfig,
        client: httpx.Client,
        job: GenerationJob,
        on_progress: ProgressCallback,
        should_cancel: CancelCheck,
    ) -> None:
        self.config = config
        self.client = client
        self.job = job
        self.on_progress = on_progress
        self.should_cancel = should_cancel
        self._done = 0.0

    def run(self, upstream_model: str) -> GenerationResult:
        task_id = self.job.resume.get(UPSTREAM_TASK_ID)
        resumed = bool(task_id)
        if task_id:
            log.info("resuming MiniMax task %s", task_id)
        else:
            task_id = self._submit(upstream_model)
            # At once: from now on a restarted worker must find this task, not submit another.
            self.job.save_state({UPSTREAM_TASK_ID: task_id})
        file_id = self._await(task_id, poll_at_once=resumed)
        self._download(task_id, file_id)
        facts = self._read_video()
        write_still(self.job.first_frame_path, facts.first)
        write_still(self.job.last_frame_path, facts.last)
        self._progress(1.0)
        return GenerationResult(
            video_path=self.job.video_path,
            first_frame_path=self.job.first_frame_path,
            last_frame_path=self.job.last_frame_path,
            size=facts.size,
            fps=facts.fps,
            frames=facts.frames,
        )

    # The three upstream calls.

    def _submit(self, upstream_model: str) -> str:
        body = submission_body(self.job, upstream_model)
        answer = self._call("POST", SUBMIT_PATH, json_body=body, gated=True, submitting=True)
        task_id = answer.get("task_id")
        if not task_id:
            raise GenerationFailed("MiniMax accepted the video request but answered no task id")
        log.info(
            "MiniMax task %s submitted (%s, %d s, %s)",
            task_id,
            upstream_model,
            self.job.duration_s,
            self.job.resolution.value,
        )
        return str(task_id)

    def _await(self, task_id: str, *, poll_at_once: bool) -> str:
        """Poll until the upstream task ends; answers its video's file id."""
        processing_since: float | None = None
        last_status = ""
        if not poll_at_once:
            self._wait(self.config.poll_s)
        while True:
            answer = self._call("GET", QUERY_PATH, params={"task_id": task_id}, gated=True)
            status = str(answer.get("status", ""))
            if status != last_status:
                log.info("MiniMax task %s: %s", task_id, status or "(no status)")
                last_status = status
            if status == UpstreamStatus.SUCCESS:
                file_id = answer.get("file_id")
                if not file_id:
                    raise GenerationFailed("MiniMax reported the video done but named no file")
                return str(file_id)
            if status == UpstreamStatus.FAIL:
                reason = self._failure_message(answer)
                raise GenerationFailed(f"MiniMax could not generate the video: {reason}")
            if status == UpstreamStatus.PROCESSING:
                processing_since = processing_since or time.monotonic()
                elapsed = time.monotonic() - processing_since
                start = _STATUS_PROGRESS[UpstreamStatus.PROCESSING]
                self._progress(
                    start + (_PROCESSING_END - start) * (1 - math.exp(-elapsed / _PROCESSING_TAU_S))
                )
            elif status in _STATUS_PROGRESS:
                self._progress(_STATUS_PROGRESS[UpstreamStatus(status)])
            self._wait(self.config.poll_s)

    def _download_url(self, file_id: str) -> str:
        answer = self._call("GET", RETRIEVE_PATH, params={"file_id": file_id}, gated=False)
        file = answer.get("file")
        url = file.get("download_url") if isinstance(file, Mapping) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise GenerationFailed("MiniMax named the video's file but gave no link to download it")
        return url

    def _download(self, task_id: str, file_id: str) -> None:
        """Fetch the video to the job's path, under a temporary name until it is complete."""
        target = self.job.video_path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        failures = 0
        try:
            while True:
                # A fresh link on every try: MiniMax's links expire.
                url = self._download_url(file_id)
                try:
                    size = self._stream_to(url, partial)
                    break
                except (httpx.TransportError, _Retry) as error:
                    failures = self._back_off(failures, f"downloading the video of task {task_id}", error)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        log.info("MiniMax task %s: video downloaded, %d bytes", task_id, size)

    def _stream_to(self, url: str, path: Path) -> int:
        # The link is MiniMax's CDN: no Authorization header goes there.
        with self.client.stream("GET", url, follow_redirects=True) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retry(f"HTTP {response.status_code}")
            if response.status_code != 200:
                raise GenerationFailed(f"MiniMax's video link answered HTTP {response.status_code}")
            total = int(response.headers.get("Content-Length") or 0)
            received = 0
            start = self._done
            with path.open("wb") as out:
                for chunk in response.iter_bytes(_DOWNLOAD_CHUNK):
                    self._check_cancel()
                    out.write(chunk)
                    received += len(chunk)
                    if total > 0:
                        self._progress(start + (_DOWNLOADED - start) * min(1.0, received / total))
        return received

    # Calls, waits and retries.

    def _call(
        self,
        method: str,
        path: str,
        *,
        gated: bool,
        submitting: bool = False,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One API call, retried until it answers; raises the mapped error for a refusal."""
        failures = 0
        while True:
            if gated and not self.config.gate.wait_turn(self.should_cancel, self._pause):
                raise GenerationCanceled("stopped while waiting for a turn at MiniMax's rate limit")
            self._check_cancel()
            try:
                response = self.client.request(
                    method,
                    self.config.base_url + path,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {self.config.api_key}"},
                )
                answer = self._answer(method, path, response)
            except (httpx.TransportError, _Retry) as error:
                failures = self._back_off(failures, f"{method} {path}", error)
                continue
            code, message = _status_of(answer)
            if code == StatusCode.OK:
                return answer
            message = self._scrub(message)
            if code in _RATE_LIMITED:
                wait_s = self.config.rate_limited_s
                log.info("MiniMax rate limited %s %s (%d); waiting %g s", method, path, code, wait_s)
                self._wait(wait_s)
                continue
            if code in _TRANSIENT:
                failures = self._back_off(failures, f"{method} {path}", _Retry(f"error {code}: {message}"))
                continue
            raise refusal(code, message, submitting=submitting)

    def _answer(self, method: str, path: str, response: httpx.Response) -> dict[str, Any]:
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status in (401, 403):
            raise EngineMisconfigured(f"MiniMax refused the API key (HTTP {status})")
        if status in (404, 405):
            raise EngineMisconfigured(
                f"MiniMax's API has no {method} {path} at the configured base URL (HTTP {status})"
            )
        if status != 200:
            raise GenerationFailed(f"MiniMax answered HTTP {status} to {method} {path}")
        try:
            answer = response.json()
        except ValueError as error:
            raise _Retry("an answer that is not JSON") from error
        if not isinstance(answer, dict):
            raise _Retry("an answer that is not a JSON object")
        return answer

    def _back_off(self, failures: int, what: str, error: Exception) -> int:
        """Wait before the next try (1, 2, 4 ... s, capped); answers the failures so far."""
        delay = min(self.config.retry_max_s, self.config.retry_initial_s * 2**failures)
        log.warning("MiniMax: %s failed (%s); retrying in %g s", what, self._describe(error), delay)
        self._wait(delay)
        return failures + 1

    def _wait(self, seconds: float) -> None:
        if self._pause(seconds):
            raise GenerationCanceled("stopped while waiting for MiniMax")

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds`, or less when asked to stop; answers True if asked to stop, like `Event.wait`."""
        end = time.monotonic() + seconds
        while not self.should_cancel():
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, _CANCEL_CHECK_S))
        return True

    def _check_cancel(self) -> None:
        if self.should_cancel():
            raise GenerationCanceled("stopped")

    def _progress(self, done: float) -> None:
        if done > self._done:
            self._done = done
            self.on_progress(done)

    def _scrub(self, text: str) -> str:
        """Never let the key travel into a log or a task's failMsg, even if MiniMax echoes it."""
        return text.replace(self.config.api_key, "***") if self.config.api_key else text

    def _describe(self, error: Exception) -> str:
        return self._scrub(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)

    def _failure_message(self, answer: Mapping[str, Any]) -> str:
        for key in ("error_message", "fail_reason"):
            value = answer.get(key)
            if isinstance(value, str) and value:
                return self._scrub(value)
        _code, message = _status_of(answer)
        return self._scrub(message) if message and message.lower() != "success" else "no reason given"

    # The video.

    def _read_video(self) -> _VideoFacts:
        try:
            return self._decode()
        except (av.FFmpegError, ValueError) as error:
            raise GenerationFailed(f"MiniMax's video could not be read: {error}") from error

    def _decode(self) -> _VideoFacts:
        with av.open(str(self.job.video_path)) as container:
            if not container.streams.video:
                raise GenerationFailed("MiniMax's video has no video stream")
            stream = container.streams.video[0]
            first: NDArray[np.uint8] | None = None
            last_frame: av.VideoFrame | None = None
            frames = 0
            for frame in container.decode(stream):
                if first is None:
                    first = _rgb(frame)
                last_frame = frame
                frames += 1
                if frames % 25 == 0:
                    self._check_cancel()
            if first is None or last_frame is None:
                raise GenerationFailed("MiniMax's video has no frames")
            rate = stream.average_rate or stream.guessed_rate
            fps = round(float(rate)) if rate else 0
            if fps <= 0:
                raise GenerationFailed("MiniMax's video has no frame rate")
            return _VideoFacts(
                size=FrameSize(stream.codec_context.width, stream.codec_context.height),
                fps=fps,
                frames=frames,
                first=first,
                last=_rgb(last_frame),
            )


def _status_of(answer: Mapping[str, Any]) -> tuple[int, str]:
    """``base_resp``'s code and message; an answer without one counts as a success."""
    base = answer.get("base_resp")
    if not isinstance(base, Mapping):
        return StatusCode.OK, ""
    try:
        code = int(base.get("status_code", 0))
    except (TypeError, ValueError):
        code = StatusCode.UNKNOWN_ERROR
    return code, str(base.get("status_msg") or "")


def _rgb(frame: av.VideoFrame) -> NDArray[np.uint8]:
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
