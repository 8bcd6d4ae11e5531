"""Frames from a camera path: sub-pixel warps of a source pre-scaled once, streamed to the encoder.

The picture is resized once, to the scale at which the most magnified frame samples it about
one to one, and split into BT.709 Y'CbCr planes with the chroma already at half size. Each
frame is then three warps straight into a 4:2:0 buffer: no per-frame resize, colour
conversion or copy of the whole picture. A worker thread warps the next frames while the
calling thread feeds the encoder, which runs its own threads (both OpenCV and libx264 release
the GIL), so warping and encoding overlap.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sys
import threading
from collections.abc import Generator
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from kinema.domain.errors import GenerationCanceled
from kinema.domain.video import FrameSize
from kinema.engines.base import CancelCheck, ProgressCallback
from kinema.engines.motion.camera import CameraPath
from kinema.media.color import rgb_to_ycbcr_planes, subsample_chroma
from kinema.media.encode import H264Writer

MARGIN_PX = 1.0
"""Distance kept between any sample and the picture's edge, so bilinear taps stay inside."""

MAX_SOURCE_PIXELS = 24_000_000
"""Upper bound on the pre-scaled picture, which bounds memory whatever the input."""

# Luma to chroma coordinates for centre-sited 4:2:0: chroma sample j sits between luma 2j and 2j+1.
_LUMA_TO_CHROMA = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])
_CHROMA_TO_LUMA = np.linalg.inv(_LUMA_TO_CHROMA)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the world sits on the pre-scaled picture."""

    source_size: FrameSize  #: Size of the pre-scaled picture.
    world_to_source: NDArray[np.float64]  #: 3x3, world pixels to pre-scaled picture pixels.


def _corner_points(size: FrameSize) -> NDArray[np.float64]:
    w, h = size.width - 1.0, size.height - 1.0
    return np.array([[0.0, 0.0, 1.0], [w, 0.0, 1.0], [0.0, h, 1.0], [w, h, 1.0]]).T


def _apply(matrices: NDArray[np.float64], points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Map homogeneous points (3 x P) through each matrix (N x 3 x 3): N x P x 2."""
    mapped = matrices @ points
    return np.asarray(np.moveaxis(mapped[:, :2] / mapped[:, 2:3], 1, 2), dtype=np.float64)


def _finest_scale(path: CameraPath) -> float:
    """World pixels per output pixel in the most magnified frame, measured at the frame centre."""
    cx, cy = (path.size.width - 1) / 2.0, (path.size.height - 1) / 2.0
    probes = np.array([[cx, cx + 1.0, cx], [cy, cy, cy + 1.0], [1.0, 1.0, 1.0]])
    mapped = _apply(path.homographies, probes)
    dx = mapped[:, 1] - mapped[:, 0]
    dy = mapped[:, 2] - mapped[:, 0]
    areas = np.abs(dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0])
    return float(np.sqrt(areas.min()))


def place_world(path: CameraPath, image_width: int, image_height: int) -> Placement:
    """Scale and centre the whole camera path on the picture, so no frame sees past its edges.

    The region every frame covers is bounded from all frames' corners (a homography maps
    the frame to a convex quadrilateral, so its corners bound it). That region is fitted into
    the picture as large as it goes, which is the least overscan the path allows. The
    picture is pre-scaled so the most magnified frame samples it about one to one: downscaled
    when it has more pixels than that needs, upscaled once (with a good filter) when it has
    fewer, never beyond what the fit and the memory bound allow.
    """
    corners = _apply(path.homographies, _corner_points(path.size)).reshape(-1, 2)
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    extent_x, extent_y = max(x1 - x0, 1.0), max(y1 - y0, 1.0)

    fit = min((image_width - 1 - 2 * MARGIN_PX) / extent_x, (image_height - 1 - 2 * MARGIN_PX) / extent_y)
    wanted = 1.0 / _finest_scale(path)  # picture pixels per world pixel for 1:1 sampling at most
    prescale = min(wanted / fit, max(1.0, 1.0 / fit))
    prescale = min(prescale, math.sqrt(MAX_SOURCE_PIXELS / (image_width * image_height)))
    source = FrameSize(
        _even_at_least_two(image_width * prescale), _even_at_least_two(image_height * prescale)
    )

    scale = min((source.width - 1 - 2 * MARGIN_PX) / extent_x, (source.height - 1 - 2 * MARGIN_PX) / extent_y)
    centre_world = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    centre_source = ((source.width - 1) / 2.0, (source.height - 1) / 2.0)
    world_to_source = np.array(
        [
            [scale, 0.0, centre_source[0] - scale * centre_world[0]],
            [0.0, scale, centre_source[1] - scale * centre_world[1]],
            [0.0, 0.0, 1.0],
        ]
    )
    return Placement(source, world_to_source)


def _even_at_least_two(value: float) -> int:
    return max(2, 2 * round(value / 2))


class FrameRenderer:
    """Renders any frame of a path, as a 4:2:0 buffer for the encoder or as RGB for a still."""

    def __init__(self, image: NDArray[np.uint8], path: CameraPath) -> None:
        height, width = image.shape[:2]
        placement = place_world(path, width, height)
        source = placement.source_size
        shrinking = source.width < width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        self._rgb = np.asarray(
            cv2.resize(image, (source.width, source.height), interpolation=interpolation), dtype=np.uint8
        )
        luma, cb, cr = rgb_to_ycbcr_planes(self._rgb)
        self._luma = luma
        self._chroma = (subsample_chroma(cb), subsample_chroma(cr))
        self.size = path.size
        self.frames = len(path)
        self._to_source = placement.world_to_source @ path.homographies
        self._to_source /= self._to_source[:, 2:3, 2:3]
        self._chroma_to_source = _LUMA_TO_CHROMA @ self._to_source @ _CHROMA_TO_LUMA

    def matrix(self, index: int) -> NDArray[np.float64]:
        """The 3x3 map from output pixels of frame `index` to pre-scaled picture pixels."""
        return np.asarray(self._to_source[index], dtype=np.float64)

    def render_i420(self, index: int, out: NDArray[np.uint8]) -> None:
        """Warp frame `index` into `out`, a planar 4:2:0 buffer of shape (H * 3 / 2, W)."""
        w, h = self.size.width, self.size.height
        flat = out.reshape(-1)
        quarter = w * h // 4
        _warp(self._luma, self._to_source[index], (w, h), out[:h])
        for plane, offset in zip(self._chroma, (w * h, w * h + quarter), strict=True):
            target = flat[offset : offset + quarter].reshape(h // 2, w // 2)
            _warp(plane, self._chroma_to_source[index], (w // 2, h // 2), target)

    def render_rgb(self, index: int) -> NDArray[np.uint8]:
        """Frame `index` in RGB, straight from the picture, for the first- and last-frame stills."""
        out = np.empty((self.size.height, self.size.width, 3), np.uint8)
        _warp(self._rgb, self._to_source[index], (self.size.width, self.size.height), out)
        return out


def _warp(
    source: NDArray[np.uint8], matrix: NDArray[np.float64], size: tuple[int, int], out: NDArray[np.uint8]
) -> None:
    """Sample `source` at `matrix` @ (x, y) for every output pixel, bilinearly.

    Samples never leave the picture (see `place_world`); the border is black so that a
    mistake would show instead of being smeared over.
    """
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if abs(matrix[2, 0]) < 1e-12 and abs(matrix[2, 1]) < 1e-12:
        cv2.warpAffine(source, matrix[:2], size, dst=out, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    else:
        cv2.warpPerspective(source, matrix, size, dst=out, flags=flags, borderMode=cv2.BORDER_CONSTANT)


_QUEUE_DEPTH = 8
_WARP_NICENESS = 5


def _yield_to_encoder() -> None:
    """Lower the calling thread's scheduling priority (Linux, where niceness is per thread).

    The encoder's threads then get the cores whenever they can use them, and the warps fill
    the gaps x264 leaves between its frame threads; the queue keeps a few frames in hand so
    the encoder never waits.
    """
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _WARP_NICENESS)


def _warped_frames(renderer: FrameRenderer) -> Generator[NDArray[np.uint8], None, None]:
    """Yield frames in order while a worker thread warps the ones after them.

    Buffers are recycled from a small pool: the queue bounds how far the worker runs ahead,
    so a buffer is only rewritten after the encoder has taken its copy.
    """
    shape = (renderer.size.height * 3 // 2, renderer.size.width)
    pool = [np.empty(shape, np.uint8) for _ in range(_QUEUE_DEPTH + 2)]
    handoff: queue.Queue[NDArray[np.uint8] | BaseException | None] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()

    def work() -> None:
        _yield_to_encoder()
        try:
            for index in range(renderer.frames):
                if stop.is_set():
                    return
                buffer = pool[index % len(pool)]
                renderer.render_i420(index, buffer)
                handoff.put(buffer)
            handoff.put(None)
        except BaseException as error:  # handed to the consumer, which re-raises it
            handoff.put(error)

    worker = threading.Thread(target=work, name="kinema-warp", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting on a full queue
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.05)
        worker.join()


def render_clip(
    renderer: FrameRenderer,
    writer: H264Writer,
    on_progress: ProgressCallback,
    should_cancel: CancelCheck,
) -> int:
    """Encode every frame of the path; returns the number of frames written.

    Progress is reported and cancellation checked once per frame, on the calling thread.
    """
    frames = _warped_frames(renderer)
    try:
        for index, buffer in enumerate(frames):
            if should_cancel():
                raise GenerationCanceled("generation was canceled")
            writer.write_i420(buffer)
            on_progress((index + 1) / renderer.frames)
    finally:
        frames.close()  # stops and joins the worker now, not when the generator is collected
    return writer.frames_written
