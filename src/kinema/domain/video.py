"""Output video geometry: resolutions, durations and the frame size that follows the input."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Resolution(StrEnum):
    """An output resolution, named by the length of the frame's short side."""

    P512 = "512P"  #: Short side 512 pixels (Hailuo 02 standard).
    P768 = "768P"  #: Short side 768 pixels; 1366x768 for a 16:9 input.
    P1080 = "1080P"  #: Short side 1080 pixels; 1920x1080 for a 16:9 input.

    @property
    def short_side(self) -> int:
        return int(self.value.removesuffix("P"))


DEFAULT_FPS = 25


class Capability(StrEnum):
    """A kind of generation an engine can perform."""

    IMAGE_TO_VIDEO = "image-to-video"  #: Animates a still image, guided by a prompt.
    TEXT_TO_VIDEO = "text-to-video"  #: Makes a video from the prompt alone.


@dataclass(frozen=True, slots=True)
class FrameSize:
    """Width and height of video frames, both even as 4:2:0 chroma needs."""

    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(f"frame size must be positive and even, got {self.width}x{self.height}")

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def _round_even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def output_size(image_width: int, image_height: int, resolution: Resolution) -> FrameSize:
    """The frame size for an input image: the short side fixed, the long side by aspect ratio.

    A 16:9 input gives 1366x768 at 768P and 1920x1080 at 1080P, as Hailuo does.
    """
    if image_width <= 0 or image_height <= 0:
        raise ValueError("image dimensions must be positive")
    short = resolution.short_side
    if image_width >= image_height:
        return FrameSize(_round_even(short * image_width / image_height), short)
    return FrameSize(short, _round_even(short * image_height / image_width))
