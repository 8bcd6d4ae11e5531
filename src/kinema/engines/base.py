"""The engine contract: what every video engine declares, receives and returns.

An engine knows nothing of HTTP, tasks or credits. It is set up once (`setup`), then asked to
`generate` as many times as there is work: given a decoded image (or none, for text-to-video),
the prompt, the duration, the resolution, the frame rate and a seed, it writes an MP4 and a
first- and last-frame image into the job's folder, reporting progress and stopping promptly
when asked to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from kinema.domain.errors import InvalidInput
from kinema.domain.video import DEFAULT_FPS, Capability, FrameSize, Resolution, output_size


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What an engine is and what it can do, for the registry, the catalog and the API."""

    name: str
    capabilities: frozenset[Capability]
    resolutions: frozenset[Resolution]
    durations: frozenset[int]
    generates_content: bool  #: False when the engine only moves a camera over the input.
    description: str


ProgressCallback = Callable[[float], None]
"""Called with the fraction of the work done, from 0.0 to 1.0."""

CancelCheck = Callable[[], bool]
"""Returns True when the work should stop; engines ask at least once per frame or step."""


@dataclass(frozen=True, slots=True)
class GenerationJob:
    """One generation, as an engine sees it."""

    prompt: str
    image: NDArray[np.uint8] | None  #: RGB, H x W x 3, already decoded and checked.
    duration_s: int
    resolution: Resolution
    video_path: Path  #: Where the MP4 goes; the stills go beside it (see below).
    fps: int = DEFAULT_FPS
    seed: int = 0
    options: dict[str, str] = field(default_factory=dict)  #: Engine-specific extras.
    model: str = ""  #: The catalog model asked for; an engine that serves several may map it.
    #: What the engine saved (`save_state`) during an earlier attempt at the same task: a remote
    #: engine finds its upstream job here and resumes it instead of submitting again.
    resume: Mapping[str, str] = field(default_factory=dict)
    #: Persists engine state at once (before returning), for `resume` after a crash.
    save_state: Callable[[Mapping[str, str]], None] = field(default=lambda _state: None, compare=False)

    @property
    def frame_count(self) -> int:
        return self.duration_s * self.fps

    @property
    def size(self) -> FrameSize:
        """Frames follow the image's aspect ratio; text-to-video is 16:9."""
        if self.image is None:
            return output_size(16, 9, self.resolution)
        height, width = self.image.shape[:2]
        return output_size(width, height, self.resolution)

    @property
    def first_frame_path(self) -> Path:
        """``clip.mp4`` gets ``clip.first.jpg``."""
        return self.video_path.with_suffix(".first.jpg")

    @property
    def last_frame_path(self) -> Path:
        return self.video_path.with_suffix(".last.jpg")


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """The files an engine wrote and what they hold."""

    video_path: Path
    first_frame_path: Path
    last_frame_path: Path
    size: FrameSize
    fps: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


class RateGate(Protocol):
    """A limit on calls to an upstream, shared by every worker (see `kinema.store.gate`)."""

    def wait_turn(self, should_stop: Callable[[], bool], sleep: Callable[[float], bool]) -> bool:
        """Wait for a turn (True), or give up when `should_stop` (False)."""
        ...


class Engine(Protocol):
    """A video engine. Engines are picked by name (see `kinema.engines.registry`)."""

    info: EngineInfo

    def setup(self) -> None:
        """Load what the engine needs (weights, clients); called once before any `generate`."""

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        """Write the job's video and stills; raise `GenerationCanceled` if asked to stop."""


def check_job(info: EngineInfo, job: GenerationJob) -> None:
    """Refuse a job the engine cannot do, with a message that names the rule."""
    needed = Capability.TEXT_TO_VIDEO if job.image is None else Capability.IMAGE_TO_VIDEO
    if needed not in info.capabilities:
        raise InvalidInput(f"the {info.name} engine cannot do {needed.value}")
    if job.resolution not in info.resolutions:
        allowed = ", ".join(sorted(r.value for r in info.resolutions))
        raise InvalidInput(f"resolution must be one of {allowed}")
    if job.duration_s not in info.durations:
        allowed = ", ".join(str(d) for d in sorted(info.durations))
        raise InvalidInput(f"duration must be one of {allowed} seconds")
    if job.fps <= 0:
        raise InvalidInput("fps must be positive")
