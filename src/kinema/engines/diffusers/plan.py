"""How a job becomes model calls: the working size, the clips, and which frame goes where.

Pure arithmetic, no torch: the engine asks it what to generate and how to lay the generated
frames onto the output's timeline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from kinema.domain.video import FrameSize

#: Frame rates this close to the output's are conformed (played frame for frame, a little faster
#: or slower), as television does with 24 fps film at 25 fps: dropping or repeating a frame every
#: second would make a visible hitch in smooth motion, a 4 % change of pace does not.
CONFORM_TOLERANCE = 0.05


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What the engine needs to know about a model family beyond its weights."""

    family: str
    pipeline: str  #: The diffusers image-to-video pipeline class that runs it.
    class_prefix: str  #: A folder of this family has a ``model_index.json`` class starting so.
    fps: int  #: The frame rate it is trained for.
    clip_frames: int  #: The longest clip it makes in one call.
    working_pixels: int  #: The frame area it is trained for.
    guidance_scale: float
    negative_prompt: str


WAN = ModelProfile(
    family="wan",
    pipeline="WanImageToVideoPipeline",
    class_prefix="Wan",
    fps=24,
    clip_frames=121,
    working_pixels=1280 * 704,
    guidance_scale=5.0,
    # Wan's own default negative prompt (its authors tuned the model with it), in its language.
    negative_prompt=(
        "色调艳丽, 过曝, 静态, 细节模糊不清, 字幕, 风格, 作品, 画作, 画面, 静止, 整体发灰, 最差质量, "
        "低质量, JPEG压缩残留, 丑陋的, 残缺的, 多余的手指, 画得不好的手部, 画得不好的脸部, 畸形的, 毁容的, "
        "形态畸形的肢体, 手指融合, 静止不动的画面, 杂乱的背景, 三条腿, 背景人很多, 倒着走"
    ),
)

LTX = ModelProfile(
    family="ltx",
    pipeline="LTXImageToVideoPipeline",
    class_prefix="LTX",
    # LTX-Video takes the frame rate as a condition: it makes the output's rate directly.
    fps=25,
    clip_frames=257,
    working_pixels=768 * 512,
    guidance_scale=3.0,
    negative_prompt="worst quality, inconsistent motion, blurry, jittery, distorted",
)

PROFILES = {profile.family: profile for profile in (WAN, LTX)}


def working_size(output: FrameSize, pixels: int, multiple: int) -> FrameSize:
    """The model's frame size: about `pixels` in area, the output's aspect ratio, both sides a
    multiple of what the model's latent grid needs (32 for Wan 2.2 and LTX-Video).

    The input is stretched to this size and the frames stretched back, so the small difference
    in aspect ratio that rounding makes cancels out instead of cropping the picture.
    """
    if pixels <= 0 or multiple <= 0 or multiple % 2:
        raise ValueError(f"working area and multiple must be positive and even, got {pixels}, {multiple}")
    aspect = output.width / output.height
    height = math.sqrt(pixels / aspect)
    width = height * aspect
    return FrameSize(
        max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple)
    )


def source_frames(out_frames: int, out_fps: int, native_fps: int) -> list[int]:
    """For each output frame, the index of the generated frame that fills it.

    Close frame rates are conformed frame for frame (see `CONFORM_TOLERANCE`); others take the
    generated frame nearest in time, so the output lasts exactly ``out_frames / out_fps``.
    """
    if out_frames <= 0 or out_fps <= 0 or native_fps <= 0:
        raise ValueError("frame counts and rates must be positive")
    if abs(native_fps - out_fps) <= CONFORM_TOLERANCE * out_fps:
        return list(range(out_frames))
    return [math.floor(index * native_fps / out_fps + 0.5) for index in range(out_frames)]


def plan_clips(frames: int, max_clip: int, step: int) -> list[int]:
    """Lengths of the clips that together make `frames` generated frames.

    A clip has ``1 + k * step`` frames (the model's temporal compression); each clip after the
    first starts from the previous one's last frame, so it adds one frame fewer than it has.
    Clips are of equal length rather than full ones and a stub, which would move differently.
    """
    if frames <= 0 or step <= 0:
        raise ValueError("frames and step must be positive")
    longest = 1 + (max_clip - 1) // step * step
    if longest < 1 + step:
        raise ValueError(f"a clip must hold at least {1 + step} frames, got at most {max_clip}")
    new_frames = frames - 1
    count = max(1, math.ceil(new_frames / (longest - 1)))
    per_clip = max(1, math.ceil(new_frames / count))
    return [1 + math.ceil(per_clip / step) * step] * count


_CAMERA_COMMANDS = re.compile(r"\[([^\[\]]+)\]")


def model_prompt(prompt: str) -> str:
    """The prompt as a text encoder reads it: ``[Pan left, Zoom in]`` becomes a sentence."""
    text = _CAMERA_COMMANDS.sub(lambda match: f" Camera: {match.group(1).strip().lower()}. ", prompt)
    return " ".join(text.split())
