"""Reading a finished video back: its size, frame rate, frame count, and first and last frames.

An engine whose video comes from elsewhere (MiniMax's CDN) takes its stills from the video
itself, so they show exactly what the video shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np
from numpy.typing import NDArray

from kinema.domain.video import FrameSize

#: Decoding looks at `check_stop` after every this many frames.
_FRAMES_PER_CHECK: Final = 25


class UnreadableVideo(ValueError):
    """The file is not a video that can be read to its end; ``reason`` says why, after "the video"."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the video {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EndFrames:
    """What a video holds, and its first and last frames as RGB (H x W x 3)."""

    size: FrameSize
    fps: int
    frames: int
    first: NDArray[np.uint8]
    last: NDArray[np.uint8]


def read_end_frames(path: Path, check_stop: Callable[[], None] = lambda: None) -> EndFrames:
    """Decode the video at `path` from start to end, keeping its first and last frames.

    Every frame is decoded, so the count is exact and a damaged end is found. `check_stop` is
    called every few frames and may raise to stop the decoding. Raises UnreadableVideo.
    """
    try:
        return _decode(path, check_stop)
    except (av.FFmpegError, ValueError) as error:
        if isinstance(error, UnreadableVideo):
            raise
        raise UnreadableVideo(f"could not be read: {error}") from error


def _decode(path: Path, check_stop: Callable[[], None]) -> EndFrames:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise UnreadableVideo("has no video stream")
        stream = container.streams.video[0]
        first: NDArray[np.uint8] | None = None
        last_frame: av.VideoFrame | None = None
        frames = 0
        for frame in container.decode(stream):
            if first is None:
                first = _rgb(frame)
            last_frame = frame
            frames += 1
            if frames % _FRAMES_PER_CHECK == 0:
                check_stop()
        if first is None or last_frame is None:
            raise UnreadableVideo("has no frames")
        rate = stream.average_rate or stream.guessed_rate
        fps = round(float(rate)) if rate else 0
        if fps <= 0:
            raise UnreadableVideo("has no frame rate")
        return EndFrames(
            size=FrameSize(stream.codec_context.width, stream.codec_context.height),
            fps=fps,
            frames=frames,
            first=first,
            last=_rgb(last_frame),
        )


def _rgb(frame: av.VideoFrame) -> NDArray[np.uint8]:
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
