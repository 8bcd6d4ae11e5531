"""The diffusers engine: Wan 2.2 TI2V-5B or LTX-Video, from a local weights folder.

This module is the only one that imports torch and diffusers; the registry imports it only when
the ``diffusers`` engine is asked for, and reports the missing extra by name if they are absent.

A job runs as one or more clips at the model's native size and frame rate: each clip after the
first starts from the previous clip's last frame, until the job's duration is covered. Frames are
laid onto the output timeline (25 fps, exactly ``job.frame_count`` of them; see `plan`), scaled
to the output size and streamed into the encoder clip by clip.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import diffusers
import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from kinema.domain.errors import (
    EngineMisconfigured,
    EngineOutOfMemory,
    GenerationCanceled,
    GenerationFailed,
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
from kinema.engines.diffusers.config import DiffusersConfig
from kinema.engines.diffusers.plan import (
    PROFILES,
    ModelProfile,
    model_prompt,
    plan_clips,
    source_frames,
    working_size,
)
from kinema.media.encode import EncoderSettings, H264Writer, write_still

INFO = EngineInfo(
    name="diffusers",
    capabilities=frozenset({Capability.IMAGE_TO_VIDEO}),
    resolutions=frozenset(Resolution),
    durations=frozenset({6, 10}),
    generates_content=True,
    description=(
        "Open-weight image-to-video models (Wan 2.2 TI2V-5B, or LTX-Video for speed) run on this "
        "machine's GPU from a local weights folder: the picture comes to life as the prompt says."
    ),
)

WEIGHTS_SETTING = "KINEMA_DIFFUSERS_WEIGHTS_DIR"
MODEL_SETTING = "KINEMA_DIFFUSERS_MODEL"
#: Components every supported pipeline needs, each a folder beside ``model_index.json``.
REQUIRED_COMPONENTS = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")


def check_weights(config: DiffusersConfig, profile: ModelProfile) -> Path:
    """The weights folder, if it holds a model of the configured family in diffusers layout."""
    folder = config.weights_dir
    if folder is None:
        raise EngineMisconfigured(
            f"the diffusers engine needs {WEIGHTS_SETTING}: the folder of a {profile.family} model "
            "in diffusers layout on this machine (nothing is downloaded)"
        )
    if not folder.is_dir():
        raise EngineMisconfigured(f"the weights folder {folder} ({WEIGHTS_SETTING}) does not exist")
    index_path = folder / "model_index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineMisconfigured(
            f"the weights folder {folder} ({WEIGHTS_SETTING}) has no model_index.json: it must hold "
            "a model saved in diffusers layout"
        ) from None
    except (OSError, ValueError) as error:
        raise EngineMisconfigured(f"cannot read {index_path} ({WEIGHTS_SETTING}): {error}") from error
    class_name = str(index.get("_class_name", "")) if isinstance(index, dict) else ""
    if not class_name.startswith(profile.class_prefix):
        raise EngineMisconfigured(
            f"the weights folder {folder} ({WEIGHTS_SETTING}) holds {class_name or 'an unknown pipeline'}, "
            f"not a {profile.family} model as {MODEL_SETTING} says"
        )
    missing = [
        name
        for name in REQUIRED_COMPONENTS
        if not isinstance(index.get(name), list) or index[name][0] is None or not (folder / name).is_dir()
    ]
    if missing:
        raise EngineMisconfigured(
            f"the weights folder {folder} ({WEIGHTS_SETTING}) lacks {', '.join(missing)}: "
            "it must hold the whole model in diffusers layout"
        )
    return folder


def clip_frames(output: Any, frames: int) -> NDArray[np.uint8]:
    """The frames of a pipeline's output (``output_type="np"``, floats in [0, 1]) as uint8 RGB."""
    video = np.asarray(output.frames[0], dtype=np.float32)
    if video.ndim != 4 or video.shape[0] < frames or video.shape[-1] != 3:
        raise GenerationFailed(f"the model returned frames of shape {video.shape}, not {frames} RGB frames")
    scaled = np.rint(np.clip(video[:frames], 0.0, 1.0) * 255.0)
    return np.ascontiguousarray(scaled.astype(np.uint8))


def scale_frame(rgb: NDArray[np.uint8], size: FrameSize) -> NDArray[np.uint8]:
    """`rgb` at `size`: area averaging to shrink, bicubic to enlarge."""
    height, width = rgb.shape[:2]
    if (width, height) == (size.width, size.height):
        return rgb
    shrinking = size.width <= width and size.height <= height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(rgb, (size.width, size.height), interpolation=interpolation), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class JobPlan:
    """The model work of one job: what the pipeline is asked, clip by clip."""

    work: FrameSize  #: The size the model generates at.
    clips: list[int]  #: Frames per pipeline call; each call after the first continues the last.
    sources: list[int]  #: For each output frame, the generated frame that fills it.
    seed: int
    prompt: str  #: As the text encoder reads it.


class _Timeline:
    """Lays generated frames onto the output: each output frame is the generated frame that
    `source_frames` names, scaled to the output size and encoded at once."""

    def __init__(self, sources: list[int], size: FrameSize, writer: H264Writer) -> None:
        self.sources = sources
        self.size = size
        self.writer = writer
        self.made = 0  #: Generated frames seen, on the model's own timeline.
        self.written = 0  #: Output frames written.
        self.first: NDArray[np.uint8] | None = None
        self.last: NDArray[np.uint8] | None = None

    def add(self, frame: NDArray[np.uint8]) -> None:
        while self.written < len(self.sources) and self.sources[self.written] == self.made:
            out = scale_frame(frame, self.size)
            self.writer.write_rgb(out)
            if self.first is None:
                self.first = out
            self.last = out
            self.written += 1
        self.made += 1

    def finish(self) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """The first and last output frames, once every output frame is written."""
        if self.written != len(self.sources) or self.first is None or self.last is None:
            raise GenerationFailed(f"the model made too few frames ({self.written} of {len(self.sources)})")
        return self.first, self.last


class DiffusersEngine:
    """Image-to-video with an open-weight model on this machine; see the module docs."""

    info = INFO

    def __init__(
        self,
        config: DiffusersConfig,
        *,
        encoder: EncoderSettings | None = None,
        pipeline: Any = None,
    ) -> None:
        """`pipeline`, when given, is used instead of loading the weights folder (benchmarks)."""
        profile = PROFILES.get(config.model)
        if profile is None:
            raise EngineMisconfigured(f"{MODEL_SETTING} must be one of {', '.join(sorted(PROFILES))}")
        if config.steps < 1:
            raise EngineMisconfigured("the diffusers engine needs at least one denoising step")
        self.config = config
        self.profile = profile
        self.encoder = encoder or EncoderSettings()
        self._pipe: Any = None
        self._given = pipeline
        #: One generation at a time: a pipeline keeps per-call state (its scheduler, above all).
        self._lock = threading.Lock()

    @property
    def pipeline(self) -> Any:
        """The loaded diffusers pipeline (after `setup`)."""
        return self._pipe

    def setup(self) -> None:
        """Load the pipeline once and place it on the GPU as configured; it stays warm."""
        if self._pipe is not None:
            return
        cuda = torch.cuda.is_available()
        pipe = self._given if self._given is not None else self._load(cuda)
        pipe.set_progress_bar_config(disable=True)
        if cuda and self.config.offload == "model":
            pipe.enable_model_cpu_offload()
        elif cuda and self.config.offload == "group":
            # Layer by layer, prefetched on a side stream; the VAE stays whole on the GPU (tiling
            # is its memory saver).
            pipe.enable_group_offload(
                onload_device=torch.device("cuda"),
                offload_device=torch.device("cpu"),
                offload_type="leaf_level",
                use_stream=True,
                exclude_modules=["vae"],
            )
        else:
            # Offloading saves GPU memory; without a GPU there is nothing to offload to.
            pipe.to("cuda" if cuda else "cpu")
        if self.config.vae_tiling and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()
        self._pipe = pipe

    def _load(self, cuda: bool) -> Any:
        folder = check_weights(self.config, self.profile)
        pipeline_class = getattr(diffusers, self.profile.pipeline)
        dtype: Any = torch.float32  # on a CPU (tests, tiny models)
        if cuda and self.profile.family == "wan":
            # bf16, but Wan's VAE decodes in float32, as its authors run it.
            dtype = {"default": torch.bfloat16, "vae": torch.float32}
        elif cuda:
            dtype = torch.bfloat16
        try:
            return pipeline_class.from_pretrained(folder, local_files_only=True, dtype=dtype)
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise EngineMisconfigured(
                f"cannot load a {self.profile.family} model from {folder} ({WEIGHTS_SETTING}): {error}"
            ) from error

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        with self._lock:
            self.setup()
            try:
                return self._generate(job, on_progress, should_cancel)
            except BaseException as error:
                # A call stopped midway leaves offloaded models where they were; put them back.
                self._pipe.maybe_free_model_hooks()
                if isinstance(error, torch.cuda.OutOfMemoryError):
                    torch.cuda.empty_cache()
                    raise EngineOutOfMemory(
                        "the GPU ran out of memory; set KINEMA_DIFFUSERS_OFFLOAD=model (or group) "
                        "and KINEMA_DIFFUSERS_VAE_TILING=true"
                    ) from error
                raise

    def geometry(self) -> tuple[int, int]:
        """The model's spatial multiple (latent grid times patch) and its temporal step."""
        pipe = self._pipe
        if self.profile.family == "wan":
            patch = pipe.transformer.config.patch_size
            return int(pipe.vae_scale_factor_spatial) * int(patch[1]), int(pipe.vae_scale_factor_temporal)
        spatial = int(pipe.vae_spatial_compression_ratio) * int(pipe.transformer_spatial_patch_size)
        # The LTX pipelines refuse sizes that are not multiples of 32, whatever the VAE.
        spatial = math.lcm(spatial, 32)
        temporal = int(pipe.vae_temporal_compression_ratio) * int(pipe.transformer_temporal_patch_size)
        return spatial, temporal

    def plan(self, job: GenerationJob) -> JobPlan:
        """The clips, size and seed a job is made with (after `setup`)."""
        multiple, step = self.geometry()
        sources = source_frames(job.frame_count, job.fps, self.profile.fps)
        return JobPlan(
            work=working_size(job.size, self.config.working_pixels or self.profile.working_pixels, multiple),
            clips=plan_clips(sources[-1] + 1, self.config.clip_frames or self.profile.clip_frames, step),
            sources=sources,
            seed=self.config.seed if self.config.seed is not None else job.seed,
            prompt=model_prompt(job.prompt),
        )

    def generator(self, seed: int) -> torch.Generator:
        """The random source of a job, on the device the pipeline computes on."""
        return torch.Generator(device=self._pipe._execution_device).manual_seed(seed % 2**63)

    def pipeline_arguments(
        self, image: NDArray[np.uint8], plan: JobPlan, frames: int, generator: torch.Generator
    ) -> dict[str, Any]:
        """What one clip asks of the pipeline: `frames` frames from `image` (at ``plan.work``)."""
        arguments: dict[str, Any] = {
            "image": Image.fromarray(image),
            "prompt": plan.prompt,
            "negative_prompt": self.profile.negative_prompt,
            "height": plan.work.height,
            "width": plan.work.width,
            "num_frames": frames,
            "num_inference_steps": self.config.steps,
            "guidance_scale": self.profile.guidance_scale,
            "generator": generator,
            "output_type": "np",
        }
        if self.profile.family == "ltx":
            # The frame rate is a condition of LTX-Video; the decode noise is what its authors use
            # with the timestep-conditioned VAE (ignored by a VAE without it).
            arguments |= {
                "frame_rate": self.profile.fps,
                "decode_timestep": 0.05,
                "decode_noise_scale": 0.025,
            }
        return arguments

    def _generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        assert job.image is not None  # check_job refused text-to-video
        size = job.size
        plan = self.plan(job)
        steps = self.config.steps
        units = len(plan.clips) * (steps + 1)  # every step, and each clip's decoding and encoding
        generator = self.generator(plan.seed)

        start = scale_frame(job.image, plan.work)
        job.video_path.parent.mkdir(parents=True, exist_ok=True)
        with H264Writer(job.video_path, size, job.fps, self.encoder) as writer:
            timeline = _Timeline(plan.sources, size, writer)
            for index, length in enumerate(plan.clips):
                if should_cancel():
                    raise GenerationCanceled("generation canceled")
                done = index * (steps + 1)

                def on_step(step_index: int, done: int = done) -> None:
                    on_progress(min(done + step_index + 1, done + steps) / units)

                arguments = self.pipeline_arguments(start, plan, length, generator)
                frames = self._clip(arguments, length, on_step, should_cancel)
                # A clip after the first begins with the frame the previous one ended on.
                for frame in frames if index == 0 else frames[1:]:
                    timeline.add(frame)
                start = frames[-1]
                on_progress((index + 1) * (steps + 1) / units)
            first, last = timeline.finish()
        write_still(job.first_frame_path, first)
        write_still(job.last_frame_path, last)
        return GenerationResult(
            video_path=job.video_path,
            first_frame_path=job.first_frame_path,
            last_frame_path=job.last_frame_path,
            size=size,
            fps=job.fps,
            frames=len(plan.sources),
        )

    def _clip(
        self,
        arguments: dict[str, Any],
        frames: int,
        on_step: Callable[[int], None],
        should_cancel: CancelCheck,
    ) -> NDArray[np.uint8]:
        """One call of the pipeline, reporting each step; its `frames` frames as uint8 RGB."""

        def after_step(
            _pipe: Any, step_index: int, _timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            on_step(step_index)
            if should_cancel():
                # Raised from inside the loop: the remaining steps and the decoding are skipped.
                raise GenerationCanceled("generation canceled")
            return tensors

        output = self._pipe(
            **arguments, callback_on_step_end=after_step, callback_on_step_end_tensor_inputs=[]
        )
        return clip_frames(output, frames)
