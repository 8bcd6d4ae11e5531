"""Frames from a camera path: sub-pixel warps of a source pre-scaled once, streamed to the encoder.

The picture is resized once, to the scale at which the most magnified frame samples it about
one to one, and split into BT.709 Y'CbCr planes with the chroma already at half size. Each
frame is then three warps straight into a 4:2:0 buffer: no per-frame resize, colour
conversion or copy of the whole picture. A worker thread warps the next frames while the
calling thread feeds the encoder, which runs its own threads (both OpenCV and libx264 release
the GIL), so warping and encoding overlap.

When the picture is a scene (`scene.Scene`) and the camera travels, the background is remapped
through a per-pixel map (each point moves by its own disparity), computed on a coarse grid
and enlarged, and the subject, one rigid plane, is warped into its bounding box over it.
Effects (`effects.EffectRenderer`) then draw on the finished frame.
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
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from kinema.domain.errors import GenerationCanceled
from kinema.domain.video import FrameSize
from kinema.engines.base import CancelCheck, ProgressCallback
from kinema.engines.motion.camera import CameraPath, layer_matrices
from kinema.engines.motion.effects import EffectRenderer
from kinema.engines.motion.scene import Scene, SceneCues, SubjectLayer, build_scene
from kinema.media.color import i420_to_rgb, rgb_to_ycbcr_planes, subsample_chroma
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


def _finest_scale(size: FrameSize, matrices: NDArray[np.float64]) -> float:
    """World pixels per output pixel in the most magnified frame, measured at the frame centre."""
    cx, cy = (size.width - 1) / 2.0, (size.height - 1) / 2.0
    probes = np.array([[cx, cx + 1.0, cx], [cy, cy, cy + 1.0], [1.0, 1.0, 1.0]])
    mapped = _apply(matrices, probes)
    dx = mapped[:, 1] - mapped[:, 0]
    dy = mapped[:, 2] - mapped[:, 0]
    areas = np.abs(dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0])
    return float(np.sqrt(areas.min()))


def place_world(
    path: CameraPath,
    image_width: int,
    image_height: int,
    disparities: tuple[float, ...] = (1.0,),
    margin: float = 0.0,
) -> Placement:
    """Scale and centre the whole camera path on the picture, so no frame sees past its edges.

    The region every frame covers is bounded from all frames' corners (a homography maps
    the frame to a convex quadrilateral, so its corners bound it). That region is fitted into
    the picture as large as it goes, which is the least overscan the path allows. The
    picture is pre-scaled so the most magnified frame samples it about one to one: downscaled
    when it has more pixels than that needs, upscaled once (with a good filter) when it has
    fewer, never beyond what the fit and the memory bound allow.

    A travelling camera films each depth differently: the region is then the union of what
    the planes at `disparities` show (the nearest and farthest the scene holds, and the
    subject's), since every point in between moves between the extremes. `margin` (world px)
    is kept clear all round for effects that displace the picture.
    """
    matrices = [path.homographies]
    if path.travels:
        matrices += [layer_matrices(path, np.full(len(path), d)) for d in disparities]
    corners = np.concatenate([_apply(m, _corner_points(path.size)).reshape(-1, 2) for m in matrices])
    (x0, y0), (x1, y1) = corners.min(axis=0) - margin, corners.max(axis=0) + margin
    extent_x, extent_y = max(x1 - x0, 1.0), max(y1 - y0, 1.0)

    fit = min((image_width - 1 - 2 * MARGIN_PX) / extent_x, (image_height - 1 - 2 * MARGIN_PX) / extent_y)
    finest = min(_finest_scale(path.size, m) for m in matrices)
    wanted = 1.0 / finest  # picture pixels per world pixel for 1:1 sampling at most
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
    """Renders any frame of a path, as a 4:2:0 buffer for the encoder or as RGB for a still.

    With `cues`, the picture is a scene: `alpha` (the subject's matte at the picture's size, or
    None) cuts out the subject, and a travelling camera films each depth as it should. Without
    them, the picture is one plane, as for a pan. `effects` draw on every frame.
    """

    def __init__(
        self,
        image: NDArray[np.uint8],
        path: CameraPath,
        *,
        cues: SceneCues | None = None,
        alpha: NDArray[np.float32] | None = None,
        effects: EffectRenderer | None = None,
    ) -> None:
        height, width = image.shape[:2]
        self.size = path.size
        self.frames = len(path)
        self._effects = effects
        flows = effects is not None and effects.displaces
        deep = cues is not None and (alpha is not None or float(np.ptp(cues.disparity)) > 1e-3)
        layered = cues is not None and ((path.travels and deep) or flows)
        disparities: tuple[float, ...] = (1.0,)
        if layered and cues is not None:
            low, high = float(cues.disparity.min()), float(cues.disparity.max())
            disparities = (low, high, 1.0)
        margin = effects.margin if effects is not None else 0.0
        placement = place_world(path, width, height, disparities, margin)
        source = placement.source_size
        shrinking = source.width < width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        self._rgb = np.asarray(
            cv2.resize(image, (source.width, source.height), interpolation=interpolation), dtype=np.uint8
        )
        self._to_source = placement.world_to_source @ path.homographies
        self._to_source /= self._to_source[:, 2:3, 2:3]
        self._chroma_to_source = _LUMA_TO_CHROMA @ self._to_source @ _CHROMA_TO_LUMA
        self._layers: _LayeredFrames | None = None
        picture = self._rgb
        if layered and cues is not None:
            source_alpha = None
            if alpha is not None:
                source_alpha = np.asarray(
                    cv2.resize(alpha, (source.width, source.height), interpolation=cv2.INTER_AREA),
                    dtype=np.float32,
                )
            scene = build_scene(self._rgb, source_alpha, cues)
            self._layers = _LayeredFrames(scene, path, placement, effects)
            picture = scene.background
        luma, cb, cr = rgb_to_ycbcr_planes(picture)
        self._luma = luma
        self._chroma = (subsample_chroma(cb), subsample_chroma(cr))
        self._plain_stills = self._layers is None and effects is None
        if effects is not None:
            effects.bind(placement.world_to_source, source, path)

    @property
    def source_size(self) -> FrameSize:
        """Size of the pre-scaled picture that `matrix` maps into."""
        return FrameSize(self._rgb.shape[1], self._rgb.shape[0])

    def matrix(self, index: int) -> NDArray[np.float64]:
        """The 3x3 map from output pixels of frame `index` to pre-scaled picture pixels."""
        return np.asarray(self._to_source[index], dtype=np.float64)

    def render_i420(self, index: int, out: NDArray[np.uint8]) -> None:
        """Render frame `index` into `out`, a planar 4:2:0 buffer of shape (H * 3 / 2, W)."""
        w, h = self.size.width, self.size.height
        flat = out.reshape(-1)
        quarter = w * h // 4
        luma = out[:h]
        chroma = tuple(
            flat[offset : offset + quarter].reshape(h // 2, w // 2) for offset in (w * h, w * h + quarter)
        )
        if self._layers is not None:
            self._layers.render(index, self._luma, self._chroma, luma, (chroma[0], chroma[1]))
        else:
            _warp(self._luma, self._to_source[index], (w, h), luma)
            for plane, target in zip(self._chroma, chroma, strict=True):
                _warp(plane, self._chroma_to_source[index], (w // 2, h // 2), target)
        if self._effects is not None:
            self._effects.draw(index, luma, (chroma[0], chroma[1]))

    def render_rgb(self, index: int) -> NDArray[np.uint8]:
        """Frame `index` in RGB, for the first- and last-frame stills.

        A plain camera warps the picture itself; a scene or effects are drawn as the video
        shows them, through the same 4:2:0 frame.
        """
        if self._plain_stills:
            out = np.empty((self.size.height, self.size.width, 3), np.uint8)
            _warp(self._rgb, self._to_source[index], (self.size.width, self.size.height), out)
            return out
        buffer = np.empty((self.size.height * 3 // 2, self.size.width), np.uint8)
        self.render_i420(index, buffer)
        return i420_to_rgb(buffer)


def _warp(
    source: NDArray[Any], matrix: NDArray[np.float64], size: tuple[int, int], out: NDArray[Any]
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


_NO_MAP: Any = None  # cv2.remap's second map, unused with a two-channel first map

GRID_STEP = 8
"""Output pixels between the points where the background's per-pixel map is computed exactly.
Depth varies smoothly (see `scene`), so bilinear interpolation between them is exact to well
under a hundredth of a pixel."""


class _MapGrid:
    """Points spaced `step` apart whose values `cv2.resize` enlarges into a per-pixel map.

    `cv2.resize` by an integer factor `step` puts grid point i at output x = step (i - 1/2)
    - 1/2 once the first `step` columns are cut off. One extra point beyond each edge means
    every output pixel lies between two points: none is extrapolated.
    """

    def __init__(self, width: int, height: int, step: int) -> None:
        self.step = step
        self.width, self.height = width, height
        self.columns = math.ceil(width / step + 1.5)
        self.rows = math.ceil(height / step + 1.5)
        xs = step * (np.arange(self.columns) - 0.5) - 0.5
        ys = step * (np.arange(self.rows) - 0.5) - 0.5
        gx, gy = np.meshgrid(xs, ys)
        self.points = np.stack([gx.ravel(), gy.ravel()])  #: (2, rows * columns), output px

    def enlarge(self, values: NDArray[np.float32]) -> NDArray[np.float32]:
        """Per-pixel (H x W x 2) map from one (x, y) pair per grid point."""
        small = values.reshape(2, self.rows, self.columns).transpose(1, 2, 0)
        size = (self.columns * self.step, self.rows * self.step)
        large = cv2.resize(
            np.ascontiguousarray(small, dtype=np.float32), size, interpolation=cv2.INTER_LINEAR
        )
        s = self.step
        return np.asarray(large[s : s + self.height, s : s + self.width], dtype=np.float32)


class _LayeredFrames:
    """A scene filmed by a travelling camera: background by disparity, subject on top."""

    def __init__(
        self, scene: Scene, path: CameraPath, placement: Placement, effects: EffectRenderer | None
    ) -> None:
        self._path = path
        self._world_to_source = placement.world_to_source
        self._source = placement.source_size
        self._effects = effects
        cues = scene.cues
        self._disparity = np.ascontiguousarray(cues.disparity, dtype=np.float32)
        w, h = path.size.width, path.size.height
        self._luma_grid = _MapGrid(w, h, GRID_STEP)
        self._chroma_grid = _MapGrid(w // 2, h // 2, GRID_STEP // 2)
        # The chroma grid's points in luma coordinates (centre-sited 4:2:0).
        self._chroma_points_luma = self._chroma_grid.points * 2.0 + 0.5
        self._subject = _SubjectFrames(scene.subject, path, placement) if scene.subject else None

    def _source_points(self, index: int, points: NDArray[np.float64]) -> NDArray[np.float32]:
        """Where output points of frame `index` sample the background, in source pixels."""
        path = self._path
        turns = path.turns[index]
        homogeneous = turns @ np.vstack([points, np.ones((1, points.shape[1]))])
        rest = homogeneous[:2] / homogeneous[2:3]  # world, before the camera's travel
        to_source = self._world_to_source
        at_rest = to_source[:2, :2] @ rest + to_source[:2, 2:3]
        field_h, field_w = self._disparity.shape
        fx = (at_rest[0] + 0.5) * field_w / self._source.width - 0.5
        fy = (at_rest[1] + 0.5) * field_h / self._source.height - 0.5
        disparity = cv2.remap(
            self._disparity,
            fx.astype(np.float32)[None],
            fy.astype(np.float32)[None],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )[0].astype(np.float64)
        inverse_push = 1.0 - disparity * (1.0 - 1.0 / path.push[index])
        poi = np.array(path.focus_px)[:, None]
        world = rest * inverse_push + poi * (1.0 - inverse_push) + disparity * path.travel[index][:, None]
        if self._effects is not None and self._effects.displaces:
            world = world + self._effects.displacement(index, at_rest, self._source)
        return np.asarray(to_source[:2, :2] @ world + to_source[:2, 2:3], dtype=np.float32)

    def render(
        self,
        index: int,
        luma_source: NDArray[np.uint8],
        chroma_sources: tuple[NDArray[np.uint8], NDArray[np.uint8]],
        luma: NDArray[np.uint8],
        chroma: tuple[NDArray[np.uint8], NDArray[np.uint8]],
    ) -> None:
        luma_map = self._luma_grid.enlarge(self._source_points(index, self._luma_grid.points))
        cv2.remap(luma_source, luma_map, _NO_MAP, cv2.INTER_LINEAR, dst=luma, borderMode=cv2.BORDER_CONSTANT)
        in_luma = self._source_points(index, self._chroma_points_luma)
        chroma_map = self._chroma_grid.enlarge((in_luma - 0.5) * 0.5)
        for plane, target in zip(chroma_sources, chroma, strict=True):
            cv2.remap(
                plane, chroma_map, _NO_MAP, cv2.INTER_LINEAR, dst=target, borderMode=cv2.BORDER_CONSTANT
            )
        if self._subject is not None:
            self._subject.composite(index, luma, chroma)


class _SubjectFrames:
    """The subject layer: one rigid plane, warped into its box on each frame and laid over."""

    def __init__(self, layer: SubjectLayer, path: CameraPath, placement: Placement) -> None:
        luma, cb, cr = rgb_to_ycbcr_planes(layer.rgb)
        self._luma = luma
        self._chroma = (subsample_chroma(cb), subsample_chroma(cr))
        height, width = layer.alpha.shape
        self._alpha = layer.alpha
        self._alpha_chroma = np.asarray(
            cv2.resize(layer.alpha, (width // 2, height // 2), interpolation=cv2.INTER_AREA), np.float32
        )
        x0, y0 = layer.origin
        to_crop = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        matrices = (
            to_crop @ placement.world_to_source @ layer_matrices(path, np.full(len(path), layer.disparity))
        )
        self._to_crop = matrices / matrices[:, 2:3, 2:3]
        self._crop_size = (width, height)
        self._size = path.size

    def _box(self, index: int) -> tuple[int, int, int, int] | None:
        """The even-cornered part of the frame the subject may cover, or None if it is off-frame."""
        width, height = self._crop_size
        corners = np.array([[0.0, width, 0.0, width], [0.0, 0.0, height, height], [1.0, 1.0, 1.0, 1.0]])
        mapped = np.linalg.inv(self._to_crop[index]) @ corners
        xy = mapped[:2] / mapped[2:3]
        x0 = max(0, math.floor(xy[0].min()) - 2) // 2 * 2
        y0 = max(0, math.floor(xy[1].min()) - 2) // 2 * 2
        x1 = min(self._size.width, math.ceil(xy[0].max()) + 3)
        y1 = min(self._size.height, math.ceil(xy[1].max()) + 3)
        x1 = x0 + (x1 - x0 + 1) // 2 * 2
        y1 = y0 + (y1 - y0 + 1) // 2 * 2
        x1, y1 = min(x1, self._size.width), min(y1, self._size.height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return x0, y0, x1, y1

    def composite(
        self, index: int, luma: NDArray[np.uint8], chroma: tuple[NDArray[np.uint8], NDArray[np.uint8]]
    ) -> None:
        box = self._box(index)
        if box is None:
            return
        x0, y0, x1, y1 = box
        offset = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
        matrix = self._to_crop[index] @ offset
        _lay_over((self._luma,), self._alpha, matrix, (luma[y0:y1, x0:x1],))
        chroma_matrix = _LUMA_TO_CHROMA @ self._to_crop[index] @ _CHROMA_TO_LUMA
        chroma_offset = np.array([[1.0, 0.0, x0 // 2], [0.0, 1.0, y0 // 2], [0.0, 0.0, 1.0]])
        boxes = tuple(target[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] for target in chroma)
        _lay_over(self._chroma, self._alpha_chroma, chroma_matrix @ chroma_offset, boxes)


def _lay_over(
    planes: tuple[NDArray[np.uint8], ...],
    alpha: NDArray[np.float32],
    matrix: NDArray[np.float64],
    targets: tuple[NDArray[np.uint8], ...],
) -> None:
    """Warp `planes` and their shared `alpha` through `matrix` and lay them over `targets` (in place).

    The matte is warped once for all the planes it cuts out (both chroma planes share one).
    Planes are not stacked into one image with their matte: a two-channel 8-bit warp takes
    about three times as long as a one-channel one.
    """
    height, width = targets[0].shape
    weight = np.empty((height, width), np.float32)
    _warp(alpha, matrix, (width, height), weight)
    rest = 1.0 - weight
    colour = np.empty((height, width), np.uint8)
    for plane, target in zip(planes, targets, strict=True):
        _warp(plane, matrix, (width, height), colour)
        target[:] = cv2.blendLinear(colour, target, weight, rest)


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
