"""H.264 MP4 writing with PyAV's bundled libx264, and still images beside the video."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import av
import cv2
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from numpy.typing import NDArray

from kinema.domain.video import FrameSize
from kinema.media.color import rgb_to_i420


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """libx264 settings. The defaults look clean at a speed close to real time on two cores."""

    #: 18 rather than x264's 23 or the common 20: at 20 the quantisation of fine texture still
    #: moves a little from frame to frame on a slow camera move; at 18 the encoded motion is as
    #: steady as the benchmark's bar (about 2.7 Mbit/s at 768P).
    crf: int = 18
    preset: str = "veryfast"
    #: Two changes from veryfast make a slow camera move look as smooth as the renderer drew it
    #: (bench/motion.py measures both): a finer sub-pixel motion search (subme 6; veryfast's 2
    #: lets texture wobble from frame to frame), and no macroblock tree, whose frame-to-frame
    #: swings in quality read as a shimmer on a moving picture. Files grow by about half.
    x264_params: str = "subme=6:mbtree=0"
    keyframe_seconds: float = 2.0  #: Players seek to keyframes; every 2 s keeps seeking snappy.


class H264Writer:
    """Streams 4:2:0 frames into an MP4: H.264 High, yuv420p, BT.709, constant frame rate.

    The file is written under a temporary name and renamed on `close`, so a reader never sees
    a half-written video; `abort` removes it. The `moov` atom is moved before `mdat`
    (``+faststart``) so browsers can play while downloading.
    """

    def __init__(
        self, path: Path, size: FrameSize, fps: int, settings: EncoderSettings | None = None
    ) -> None:
        settings = settings or EncoderSettings()
        self.path = path
        self.size = size
        self.frames_written = 0
        self._partial = path.with_name(f".{path.name}.partial")
        self._container = av.open(
            str(self._partial), mode="w", format="mp4", options={"movflags": "+faststart"}
        )
        stream = self._container.add_stream("libx264", rate=fps)
        stream.width = size.width
        stream.height = size.height
        stream.pix_fmt = "yuv420p"
        stream.profile = "High"
        stream.options = {
            "crf": str(settings.crf),
            "preset": settings.preset,
            "x264-params": settings.x264_params,
        }
        context = stream.codec_context
        context.gop_size = max(1, round(settings.keyframe_seconds * fps))
        context.colorspace = Colorspace.ITU709
        context.color_primaries = ColorPrimaries.BT709
        context.color_trc = ColorTrc.BT709
        context.color_range = ColorRange.MPEG
        self._stream = stream
        self._closed = False

    def write_i420(self, planes: NDArray[np.uint8]) -> None:
        """Append a frame given as one planar buffer of shape (H * 3 / 2, W)."""
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.colorspace = Colorspace.ITU709
        frame.color_range = ColorRange.MPEG
        frame.pts = self.frames_written
        self._container.mux(self._stream.encode(frame))
        self.frames_written += 1

    def write_rgb(self, rgb: NDArray[np.uint8]) -> None:
        """Append a frame given as RGB (H x W x 3)."""
        self.write_i420(rgb_to_i420(rgb))

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to its real name."""
        if self._closed:
            return
        self._closed = True
        self._container.mux(self._stream.encode(None))
        self._container.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Stop without producing a file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        finally:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_still(path: Path, rgb: NDArray[np.uint8], quality: int = 90) -> None:
    """Save an RGB frame as a JPEG, atomically."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not encode {path.name} as JPEG")
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(encoded.tobytes())
    os.replace(partial, path)
