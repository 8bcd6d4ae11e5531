"""The motion engine: the still, filmed by a virtual camera that follows the prompt."""

from __future__ import annotations

from kinema.domain.errors import InvalidInput
from kinema.domain.video import Capability, Resolution
from kinema.engines.base import (
    CancelCheck,
    EngineInfo,
    GenerationJob,
    GenerationResult,
    ProgressCallback,
    check_job,
)
from kinema.engines.motion.camera import plan_path
from kinema.engines.motion.focus import point_of_interest
from kinema.engines.motion.plan import plan_camera
from kinema.engines.motion.render import FrameRenderer, render_clip
from kinema.media.encode import EncoderSettings, H264Writer, write_still

INFO = EngineInfo(
    name="motion",
    capabilities=frozenset({Capability.IMAGE_TO_VIDEO}),
    resolutions=frozenset(Resolution),
    durations=frozenset({6, 10}),
    generates_content=False,
    description=(
        "Moves a virtual camera over the still, following the prompt's camera commands "
        "([Pan left], [Push in], ...). Runs on any CPU with no model weights; it does not "
        "invent new content: nothing in the picture moves by itself."
    ),
)


def frame_renderer(job: GenerationJob) -> FrameRenderer:
    """The renderer for a job: its prompt's plan, as a camera path aimed at the picture's focus."""
    if job.image is None:
        raise InvalidInput("the motion engine needs an image")
    plan = plan_camera(job.prompt)
    focus = point_of_interest(job.image)
    path = plan_path(plan, job.size, job.frame_count, job.fps, seed=job.seed, focus=focus)
    return FrameRenderer(job.image, path)


class MotionEngine:
    """Camera-motion video from one still; see the package docs for how moves are rendered."""

    info = INFO

    def __init__(self, encoder: EncoderSettings | None = None) -> None:
        self.encoder = encoder or EncoderSettings()

    def setup(self) -> None:
        """Nothing to load: the engine has no weights."""

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        size = job.size
        renderer = frame_renderer(job)
        job.video_path.parent.mkdir(parents=True, exist_ok=True)
        with H264Writer(job.video_path, size, job.fps, self.encoder) as writer:
            frames = render_clip(renderer, writer, on_progress, should_cancel)
        write_still(job.first_frame_path, renderer.render_rgb(0))
        write_still(job.last_frame_path, renderer.render_rgb(renderer.frames - 1))
        return GenerationResult(
            video_path=job.video_path,
            first_frame_path=job.first_frame_path,
            last_frame_path=job.last_frame_path,
            size=size,
            fps=job.fps,
            frames=frames,
        )
