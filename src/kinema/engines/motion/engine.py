"""The motion engine: the still, filmed by a virtual camera that follows the prompt."""

from __future__ import annotations

import logging

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
from kinema.engines.motion.config import MotionConfig
from kinema.engines.motion.effects import EffectRenderer, effects_in
from kinema.engines.motion.focus import point_of_interest
from kinema.engines.motion.matte import MatteModelMissing, MatteVerdict, SubjectMatter, U2NetMatter
from kinema.engines.motion.plan import plan_camera
from kinema.engines.motion.render import FrameRenderer, render_clip
from kinema.engines.motion.scene import flat, scene_cues
from kinema.media.encode import EncoderSettings, H264Writer, write_still

log = logging.getLogger("kinema.engines.motion")

INFO = EngineInfo(
    name="motion",
    capabilities=frozenset({Capability.IMAGE_TO_VIDEO}),
    resolutions=frozenset(Resolution),
    durations=frozenset({6, 10}),
    generates_content=False,
    description=(
        "Films the still as a scene: a virtual camera follows the prompt's camera commands "
        "([Pan left], [Truck right], ...), the subject stands out from its background as the "
        "camera travels, and what the prompt names moves (snow, sparks, dust, fire light, "
        "clouds, ...). Runs on any CPU with a small bundled matte model; it invents no new content."
    ),
)


def frame_renderer(job: GenerationJob, matter: SubjectMatter | None = None) -> FrameRenderer:
    """The renderer for a job: its prompt's plan, as a camera path aimed at the picture's focus.

    With a `matter`, the picture is filmed as a scene: a clear subject gets its own layer, a
    picture without one gets depth from cues, and an unsure matte gives the flat camera.
    """
    if job.image is None:
        raise InvalidInput("the motion engine needs an image")
    plan = plan_camera(job.prompt)
    focus = point_of_interest(job.image)
    path = plan_path(plan, job.size, job.frame_count, job.fps, seed=job.seed, focus=focus)
    effects = effects_in(job.prompt)
    alpha = None
    cues = None
    if matter is not None:
        matte = matter.matte(job.image)
        verdict = matte.verdict
        alpha = matte.alpha if verdict is MatteVerdict.SUBJECT else None
        cues = scene_cues(job.image, alpha)
        if verdict is MatteVerdict.UNSURE:
            cues = flat(cues)
    elif effects:
        cues = flat(scene_cues(job.image, None))
    drawer = EffectRenderer(effects, path, job.fps, job.seed, cues) if effects else None
    return FrameRenderer(job.image, path, cues=cues, alpha=alpha, effects=drawer)


class MotionEngine:
    """Camera-motion video from one still; see the package docs for how moves are rendered."""

    info = INFO

    def __init__(self, config: MotionConfig | None = None, encoder: EncoderSettings | None = None) -> None:
        self.config = config or MotionConfig()
        self.encoder = encoder or EncoderSettings()
        self._matter: SubjectMatter | None = None

    def setup(self) -> None:
        """Load the matte model from its installed package, unless depth is off."""
        if not self.config.depth:
            return
        try:
            self._matter = U2NetMatter()
        except MatteModelMissing as error:
            if not self.config.flat_without_model:
                raise
            log.warning("%s; filming every picture flat", error.message)

    @property
    def matter(self) -> SubjectMatter | None:
        """The loaded matte model, or None when pictures are filmed flat."""
        return self._matter

    @property
    def films_depth(self) -> bool:
        """Whether pictures are filmed as scenes (depth on and the model loaded)."""
        return self._matter is not None

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        size = job.size
        renderer = frame_renderer(job, self._matter)
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
