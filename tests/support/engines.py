"""Engines for tests: one that finishes at once, one that takes a steady half second, one that
waits for the test at every frame, one that misbehaves as its prompt says (for engines run in a
process of their own)."""

from __future__ import annotations

import os
import resource
import signal
import threading
from collections.abc import Callable

from kinema.domain.errors import EngineMisconfigured, GenerationCanceled, GenerationFailed
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


class SteadyEngine(InstantEngine):
    """Takes half a second per video, in ten steps, reporting progress and asking to stop at each:
    long enough that a worker killed at random is often caught in the middle of one."""

    steps = 10
    step_s = 0.05

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        pace = threading.Event()  # never set: its timed wait is the engine's work
        for step in range(1, self.steps + 1):
            if should_cancel():
                raise GenerationCanceled("stopped")
            pace.wait(self.step_s)
            on_progress(step / self.steps)
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


class ScriptedEngine(InstantEngine):
    """Does what the prompt says, to test engines run in a process of their own.

    ``segfault`` (SIGSEGV), ``exit`` (``os._exit(3)``), ``oom`` (MemoryError), ``bug``
    (ValueError), ``hang`` (forever, deaf to cancels), ``wait`` (until canceled), ``crash once``
    (saves its state and segfaults, then succeeds on the attempt that finds that state); anything
    else succeeds in four steps, saving its state after the first. Each failure reports a first
    step of progress, so a test can see that the job began.
    """

    info = EngineInfo(
        name="scripted",
        capabilities=frozenset({Capability.TEXT_TO_VIDEO, Capability.IMAGE_TO_VIDEO}),
        resolutions=frozenset(Resolution),
        durations=frozenset({6, 10}),
        generates_content=False,
        description="Succeeds, crashes, hangs or runs out of memory, as the prompt says.",
    )

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        script = job.prompt
        if script == "crash once":
            script = "succeed" if job.resume.get("crashed") else "segfault"
            job.save_state({"crashed": "yes"})
        if script in _SCRIPTS:
            on_progress(0.1)
            _SCRIPTS[script](should_cancel)
        for step in range(1, 5):
            if should_cancel():
                raise GenerationCanceled("stopped")
            on_progress(step / 4)
            if step == 1:
                job.save_state({"pid": str(os.getpid()), **job.resume})
        return _write_outputs(job)


def _segfault(_should_cancel: CancelCheck) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file left behind
    os.kill(os.getpid(), signal.SIGSEGV)
    threading.Event().wait()


def _exit(_should_cancel: CancelCheck) -> None:
    os._exit(3)


def _out_of_memory(_should_cancel: CancelCheck) -> None:
    raise MemoryError()


def _bug(_should_cancel: CancelCheck) -> None:
    raise ValueError("a bug in the engine")


def _hang(_should_cancel: CancelCheck) -> None:
    threading.Event().wait()


def _wait(should_cancel: CancelCheck) -> None:
    stop = threading.Event()
    while not stop.wait(0.01):
        if should_cancel():
            raise GenerationCanceled("stopped")


_SCRIPTS: dict[str, Callable[[CancelCheck], None]] = {
    "segfault": _segfault,
    "exit": _exit,
    "oom": _out_of_memory,
    "bug": _bug,
    "hang": _hang,
    "wait": _wait,
}


class UnreadyEngine(InstantEngine):
    """An engine whose setup finds it misconfigured."""

    def setup(self) -> None:
        raise EngineMisconfigured("the engine's weights are missing")
