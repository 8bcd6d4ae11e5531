"""The minimax engine's job flow: submit (or resume), poll until done, download, read the stills."""

from __future__ import annotations

import base64
import logging
import math
import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

import cv2
import numpy as np
from numpy.typing import NDArray

from kinema.domain.errors import EngineMisconfigured, GenerationFailed, KinemaError
from kinema.domain.video import Capability, Resolution
from kinema.engines.base import (
    CancelCheck,
    EngineInfo,
    GenerationJob,
    GenerationResult,
    ProgressCallback,
    check_job,
)
from kinema.engines.minimax.client import QUERY_PATH, RETRIEVE_PATH, SUBMIT_PATH, MinimaxClient, Waits
from kinema.engines.minimax.codes import status_of
from kinema.engines.minimax.config import MinimaxConfig
from kinema.media.encode import write_still
from kinema.media.frames import UnreadableVideo, read_end_frames

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


class UpstreamStatus(StrEnum):
    """Where an upstream task stands, as MiniMax's query answers it."""

    PREPARING = "Preparing"  #: Accepted; MiniMax is getting it ready.
    QUEUEING = "Queueing"  #: Waiting for MiniMax's capacity.
    PROCESSING = "Processing"  #: Being generated.
    SUCCESS = "Success"  #: Done; the answer names the video's file.
    FAIL = "Fail"  #: MiniMax gave up on it.


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

_JPEG_QUALITY: Final = 95
#: Larger first frames are scaled down before they are sent: Hailuo's output is at most 1920 px
#: long, and MiniMax refuses images over 20 MB, which a huge image at quality 95 can exceed.
_MAX_IMAGE_SIDE: Final = 4096


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
        self._client = MinimaxClient(config)

    def setup(self) -> None:
        """Open the HTTP client (a connection pool shared by every generation); no request is made."""
        self._client.open()

    def close(self) -> None:
        """Close the HTTP client's connections; `setup` opens a new one."""
        self._client.close()

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        if not self._client.is_open:
            raise RuntimeError("MinimaxEngine.setup() must be called before generate()")
        upstream_model = self.config.models.get(job.model)
        if upstream_model is None:
            raise EngineMisconfigured(f"no MiniMax model is configured for {job.model or 'this job'!r}")
        waits = Waits(self.config, should_cancel)
        return _Generation(self.config, self._client, waits, job, on_progress).run(upstream_model)


class _Generation:
    """One job's conversation with MiniMax: submit (or resume), poll, download, read the frames."""

    def __init__(
        self,
        config: MinimaxConfig,
        client: MinimaxClient,
        waits: Waits,
        job: GenerationJob,
        on_progress: ProgressCallback,
    ) -> None:
        self.config = config
        self.client = client
        self.waits = waits
        self.job = job
        self.on_progress = on_progress
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
        try:
            video = read_end_frames(self.job.video_path, self.waits.check_cancel)
        except UnreadableVideo as error:
            raise GenerationFailed(f"MiniMax's video {error.reason}") from error
        write_still(self.job.first_frame_path, video.first)
        write_still(self.job.last_frame_path, video.last)
        self._progress(1.0)
        return GenerationResult(
            video_path=self.job.video_path,
            first_frame_path=self.job.first_frame_path,
            last_frame_path=self.job.last_frame_path,
            size=video.size,
            fps=video.fps,
            frames=video.frames,
        )

    def _submit(self, upstream_model: str) -> str:
        body = submission_body(self.job, upstream_model)
        answer = self.client.call(
            self.waits, "POST", SUBMIT_PATH, json_body=body, gated=True, submitting=True
        )
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
        processing_since: int | None = None
        last_status = ""
        if not poll_at_once:
            self.waits.wait(self.config.poll_s)
        while True:
            answer = self.client.call(self.waits, "GET", QUERY_PATH, params={"task_id": task_id}, gated=True)
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
                if processing_since is None:
                    processing_since = self.config.clock()
                elapsed_s = max(0, self.config.clock() - processing_since) / 1000
                start = _STATUS_PROGRESS[UpstreamStatus.PROCESSING]
                self._progress(
                    start + (_PROCESSING_END - start) * (1 - math.exp(-elapsed_s / _PROCESSING_TAU_S))
                )
            elif status in _STATUS_PROGRESS:
                self._progress(_STATUS_PROGRESS[UpstreamStatus(status)])
            self.waits.wait(self.config.poll_s)

    def _download_url(self, file_id: str) -> str:
        answer = self.client.call(self.waits, "GET", RETRIEVE_PATH, params={"file_id": file_id}, gated=False)
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
        start = self._done

        def on_received(received: int, total: int) -> None:
            if total > 0:
                self._progress(start + (_DOWNLOADED - start) * min(1.0, received / total))

        try:
            size = self.client.download(
                self.waits,
                lambda: self._download_url(file_id),
                partial,
                f"downloading the video of task {task_id}",
                on_received,
            )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        log.info("MiniMax task %s: video downloaded, %d bytes", task_id, size)

    def _progress(self, done: float) -> None:
        if done > self._done:
            self._done = done
            self.on_progress(done)

    def _failure_message(self, answer: Mapping[str, Any]) -> str:
        for key in ("error_message", "fail_reason"):
            value = answer.get(key)
            if isinstance(value, str) and value:
                return self.client.scrub(value)
        _code, message = status_of(answer)
        return self.client.scrub(message) if message and message.lower() != "success" else "no reason given"
