"""Engines for tests: one that finishes at once, one that waits for the test at every frame."""

from __future__ import annotations

import threading

from kinema.domain.errors import GenerationCanceled, GenerationFailed
from kinema.domain.video import Capability, Resolution
from kinema.engines.base import (
    CancelCheck,
    EngineInfo,
    GenerationJob,
    GenerationResult,
    ProgressCallback,
    check_job,
)

INFO = EngineInfo(
    name="instant",
    capabilities=frozenset({Capability.IMAGE_TO_VIDEO}),
    resolutions=frozenset(Resolution),
    durations=frozenset({6, 10}),
    generates_content=False,
    description="Writes placeholder files at once; for tests and benchmarks of the service.",
)


def _write_outputs(job: GenerationJob) -> GenerationResult:
    job.video_path.write_bytes(b"\x00\x00\x00\x18ftypisom placeholder video")
    job.first_frame_path.write_bytes(b"\xff\xd8\xff first")
    job.last_frame_path.write_bytes(b"\xff\xd8\xff last")
    return GenerationResult(
        job.video_path, job.first_frame_path, job.last_frame_path, job.size, job.fps, job.frame_count
    )


class InstantEngine:
    """Writes tiny placeholder files, so the service's own overhead is all that is measured."""

    info = INFO

    def setup(self) -> None:
        pass

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        on_progress(1.0)
        return _write_outputs(job)


class GatedEngine:
    """Renders "frames" only as fast as the test lets it, asking `should_cancel` before each."""

    info = INFO

    def __init__(self) -> None:
        self.started = threading.Event()
        self.frames_done = 0
        self._gate = threading.Semaphore(0)
        self.fail_with: str | None = None

    def setup(self) -> None:
        pass

    def allow(self, frames: int) -> None:
        for _ in range(frames):
            self._gate.release()

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        self.started.set()
        for frame in range(job.frame_count):
            while not self._gate.acquire(timeout=0.01):
                if should_cancel():
                    raise GenerationCanceled("stopped")
            if should_cancel():
                raise GenerationCanceled("stopped")
            if self.fail_with is not None:
                raise GenerationFailed(self.fail_with)
            self.frames_done += 1
            on_progress((frame + 1) / job.frame_count)
        return _write_outputs(job)


class TextToVideoEngine(InstantEngine):
    """An instant engine that also makes videos from text alone, to route models to."""

    info = EngineInfo(
        name="instant-text",
        capabilities=frozenset({Capability.TEXT_TO_VIDEO, Capability.IMAGE_TO_VIDEO}),
        resolutions=frozenset(Resolution),
        durations=frozenset({6, 10}),
        generates_content=True,
        description="Writes placeholder files at once, from text or an image.",
    )
