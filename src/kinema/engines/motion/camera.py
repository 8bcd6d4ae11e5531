"""The camera path: from a camera plan to one homography per frame.

A pinhole camera with focal length `f` looks at the still. Rotations (pan, tilt, the roll of a
shake) are exact for any scene: a camera that only turns sees the homography ``K R K^-1``.
Zooms change `f`, interpolated in log space so the magnification grows at a steady rate.
Moves of the camera's position (push, pull, truck, pedestal, tracking) carry the camera
through the scene, so what they do depends on depth: `CameraPath.layer_homographies` gives the
frames of a plane at any disparity (inverse depth), 1.0 being the reference plane (the subject,
or the whole picture when it is filmed flat).

Each homography maps output pixel coordinates to *world* coordinates: the pixel coordinates
of the frame the camera sees at rest. `render.place_world` then places the world on the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kinema.domain.video import FrameSize
from kinema.engines.motion.plan import CameraMove, CameraPlan

Matrices = NDArray[np.float64]

HORIZONTAL_FIELD_OF_VIEW = math.radians(60.0)
"""Across the long side; about a phone's main camera, so pans bend perspective modestly."""

REFERENCE_SECONDS = 6.0
"""Magnitudes below are for a move lasting this long; others scale with the square root of time,
so a 10-second pan goes further than a 6-second one, but not so far as to make anyone seasick."""

RAMP = 0.3
"""Fraction of a segment spent easing in, and the same easing out; in between the camera glides
at constant speed, as on a motorised rig."""


@dataclass(frozen=True, slots=True)
class Pose:
    """How far the camera has moved from rest. Signs: positive is right, up, in."""

    yaw: float = 0.0  #: Radians; positive turns right.
    pitch: float = 0.0  #: Radians; positive turns up.
    log_zoom: float = 0.0  #: Natural log of the focal-length multiplier.
    log_push: float = 0.0  #: Natural log of the planar magnification of a dolly move.
    shift_x: float = 0.0  #: Sideways travel, as a fraction of the frame width.
    shift_y: float = 0.0  #: Vertical travel, as a fraction of the frame height.

    def __add__(self, other: Pose) -> Pose:
        return Pose(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def scaled(self, factor: float) -> Pose:
        return Pose(*(a * factor for a in self.as_tuple()))

    def as_tuple(self) -> tuple[float, float, float, float, float, float]:
        return (self.yaw, self.pitch, self.log_zoom, self.log_push, self.shift_x, self.shift_y)


PAN_SWEEP = 0.15
"""A pan turns the camera until the centre has moved this fraction of the frame's width."""
TILT_SWEEP = 0.12
"""A tilt, as a fraction of the frame's height."""

# The full change each command makes over a reference-length move. Pans and tilts are given as
# screen sweeps and turned into angles once the focal length is known (see `_move_delta`).
_PLANAR_MOVES: dict[CameraMove, Pose] = {
    CameraMove.ZOOM_IN: Pose(log_zoom=math.log(1.3)),
    CameraMove.ZOOM_OUT: Pose(log_zoom=-math.log(1.3)),
    CameraMove.PUSH_IN: Pose(log_push=math.log(1.25)),
    CameraMove.PULL_OUT: Pose(log_push=-math.log(1.25)),
    CameraMove.TRUCK_LEFT: Pose(shift_x=-0.12),
    CameraMove.TRUCK_RIGHT: Pose(shift_x=0.12),
    CameraMove.PEDESTAL_UP: Pose(shift_y=0.10),
    CameraMove.PEDESTAL_DOWN: Pose(shift_y=-0.10),
    CameraMove.TRACKING_SHOT: Pose(shift_x=0.10, log_push=math.log(1.06)),
    CameraMove.SHAKE: Pose(),
    CameraMove.STATIC_SHOT: Pose(),
}

SHAKE_BAND_HZ = (2.0, 8.0)
SHAKE_TRANSLATION = 0.004
"""RMS handheld wobble, as a fraction of the frame's short side (about 3 px at 768P)."""
SHAKE_ROLL = math.radians(0.15)
"""RMS handheld roll."""


def focal_length(size: FrameSize) -> float:
    """Focal length in pixels for the frame's long side to span the field of view."""
    return 0.5 * max(size.width, size.height) / math.tan(HORIZONTAL_FIELD_OF_VIEW / 2)


def _move_delta(move: CameraMove, size: FrameSize) -> Pose:
    f = focal_length(size)
    yaw = math.atan(PAN_SWEEP * size.width / f)
    pitch = math.atan(TILT_SWEEP * size.height / f)
    rotations = {
        CameraMove.PAN_LEFT: Pose(yaw=-yaw),
        CameraMove.PAN_RIGHT: Pose(yaw=yaw),
        CameraMove.TILT_UP: Pose(pitch=pitch),
        CameraMove.TILT_DOWN: Pose(pitch=-pitch),
    }
    return rotations.get(move) or _PLANAR_MOVES[move]


def ease(t: NDArray[np.float64]) -> NDArray[np.float64]:
    """Progress through a move for t in [0, 1]: cosine ramps in and out around a constant glide.

    Velocity rises smoothly from zero over the first `RAMP` of the move, holds, and falls back
    to zero over the last `RAMP`; the velocity is continuous, so there is no jolt.
    """
    t = np.clip(t, 0.0, 1.0)
    r = RAMP

    def ramp(x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Distance covered while speeding up for x in [0, RAMP]: the integral of (1 - cos) / 2."""
        return x / 2.0 - r / (2.0 * math.pi) * np.sin(math.pi * x / r)

    area = 1.0 - r  # total distance at unit top speed: two half-height ramps and the glide
    distance = np.where(
        t <= r,
        ramp(np.minimum(t, r)),
        np.where(t <= 1.0 - r, r / 2.0 + (t - r), area - ramp(np.minimum(1.0 - t, r))),
    )
    return np.asarray(distance / area, dtype=np.float64)


def _band_limited_noise(rng: np.random.Generator, frames: int, fps: int) -> NDArray[np.float64]:
    """Unit-RMS noise whose spectrum lies within the handheld band."""
    length = max(frames, 2 * fps)  # enough samples for the band to exist in short clips
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, d=1.0 / fps)
    low, high = SHAKE_BAND_HZ
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    noise = np.fft.irfft(spectrum, n=length)[:frames]
    rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    return np.asarray(noise / rms, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CameraPath:
    """One homography per frame, mapping output pixels to world pixels.

    `homographies` film the reference plane (disparity 1.0). The camera's travel is kept apart
    (`turns`, `travel`, `push`) so that planes at other depths can be filmed from the same path.
    """

    size: FrameSize
    homographies: Matrices  #: Shape (frames, 3, 3).
    #: Rotation, zoom and handheld jitter: what every depth sees alike. Shape (frames, 3, 3).
    turns: Matrices
    travel: NDArray[np.float64]  #: Sideways and vertical travel at disparity 1, world px; (frames, 2).
    push: NDArray[np.float64]  #: Magnification of the reference plane by the dolly; (frames,).
    focus_px: tuple[float, float]  #: The point pushes close in on, in world px.

    def __len__(self) -> int:
        return int(self.homographies.shape[0])

    @property
    def travels(self) -> bool:
        """Whether the camera changes position (so near and far move differently)."""
        return bool(np.abs(self.travel).max() > 1e-6 or np.abs(self.push - 1.0).max() > 1e-9)

    def layer_homographies(self, disparity: float) -> Matrices:
        """The frames of a plane at `disparity` (1/depth, the reference plane at 1.0).

        A camera moving sideways by T sees a plane at depth Z slide by f T / Z: travel scales
        with disparity. Moving forward by T_z magnifies it by Z / (Z - T_z); the reference
        plane's magnification `push` gives T_z = 1 - 1 / push in units of its depth.
        """
        return layer_matrices(self, np.full(len(self), disparity))


def layer_matrices(path: CameraPath, disparity: NDArray[np.float64]) -> Matrices:
    """`CameraPath.layer_homographies` for one disparity per frame."""
    forward = 1.0 - 1.0 / path.push
    inverse_push = 1.0 - disparity * forward  # 1 / magnification of the plane
    poi_x, poi_y = path.focus_px
    frames = len(path)
    out = np.zeros((frames, 3, 3))
    out[:, 0, 0] = inverse_push
    out[:, 1, 1] = inverse_push
    out[:, 0, 2] = poi_x * (1.0 - inverse_push) + disparity * path.travel[:, 0]
    out[:, 1, 2] = poi_y * (1.0 - inverse_push) + disparity * path.travel[:, 1]
    out[:, 2, 2] = 1.0
    matrices = out @ path.turns
    return np.asarray(matrices / matrices[:, 2:3, 2:3], dtype=np.float64)


def plan_path(
    plan: CameraPlan,
    size: FrameSize,
    frames: int,
    fps: int,
    seed: int = 0,
    focus: tuple[float, float] = (0.5, 0.5),
) -> CameraPath:
    """Turn a plan into per-frame homographies.

    `focus` is the point of interest as fractions of the frame; pushes close in on it, so
    the camera drifts slightly toward the subject instead of straight at the centre.
    """
    if frames < 1:
        raise ValueError("a clip needs at least one frame")
    duration = frames / fps
    times = np.arange(frames, dtype=np.float64) / max(frames - 1, 1)

    poses = np.zeros((frames, 6))
    shake_envelope = np.zeros(frames)
    reached = Pose()
    for segment in plan.segments:
        span = segment.end - segment.start
        magnitude = math.sqrt(span * duration / REFERENCE_SECONDS)
        delta = Pose()
        for move in segment.moves:
            delta = delta + _move_delta(move, size)
        delta = delta.scaled(magnitude)
        local = (times - segment.start) / span
        inside = (times >= segment.start) & (times <= segment.end)
        progress = ease(local)[:, None]
        after = times > segment.end
        current = np.array(reached.as_tuple()) + progress * np.array(delta.as_tuple())
        poses[inside] = current[inside]
        poses[after] = np.array((reached + delta).as_tuple())
        if CameraMove.SHAKE in segment.moves:
            # Full strength for most of the segment, fading in and out over its first and last sixth.
            fade = np.minimum(1.0, 2.0 * np.sin(np.pi * np.clip(local, 0.0, 1.0)))
            shake_envelope += np.where(inside, fade, 0.0)
        reached = reached + delta

    rng = np.random.default_rng(seed)
    wobble = min(size.width, size.height) * SHAKE_TRANSLATION
    amplitude = np.array([wobble, wobble, SHAKE_ROLL])  # x and y in pixels, roll in radians
    shake = np.stack([_band_limited_noise(rng, frames, fps) for _ in range(3)], axis=1)
    shake *= shake_envelope[:, None] * amplitude
    return _camera_path(poses, shake, size, focus)


def _camera_path(
    poses: NDArray[np.float64], shake: NDArray[np.float64], size: FrameSize, focus: tuple[float, float]
) -> CameraPath:
    frames = poses.shape[0]
    f = focal_length(size)
    cx, cy = (size.width - 1) / 2.0, (size.height - 1) / 2.0
    poi_x = cx + (focus[0] - 0.5) * size.width
    poi_y = cy + (focus[1] - 0.5) * size.height
    k = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])

    out = np.empty((frames, 3, 3))
    turns = np.empty((frames, 3, 3))
    for i in range(frames):
        yaw, pitch, log_zoom, log_push, shift_x, shift_y = poses[i]
        jitter_x, jitter_y, roll = shake[i]
        zoom = math.exp(log_zoom)
        k_zoom_inv = np.array(
            [
                [1 / (f * zoom), 0.0, -cx / (f * zoom)],
                [0.0, 1 / (f * zoom), -cy / (f * zoom)],
                [0.0, 0.0, 1.0],
            ]
        )
        rotation = _rotation(yaw, pitch, roll)
        seen = k @ rotation @ k_zoom_inv
        push = math.exp(log_push)
        # A dolly move scales the world about the point of interest, which stays put on screen.
        dolly = np.array(
            [
                [1 / push, 0.0, poi_x * (1 - 1 / push)],
                [0.0, 1 / push, poi_y * (1 - 1 / push)],
                [0.0, 0.0, 1.0],
            ]
        )
        travel = np.array(
            [
                [1.0, 0.0, shift_x * size.width + jitter_x],
                [0.0, 1.0, -shift_y * size.height + jitter_y],
                [0.0, 0.0, 1.0],
            ]
        )
        h = travel @ dolly @ seen
        out[i] = h / h[2, 2]
        # The jitter of a handheld camera is mostly its turning: every depth shares it.
        turn = np.array([[1.0, 0.0, jitter_x], [0.0, 1.0, jitter_y], [0.0, 0.0, 1.0]]) @ seen
        turns[i] = turn / turn[2, 2]
    travel_px = np.stack([poses[:, 4] * size.width, -poses[:, 5] * size.height], axis=1)
    return CameraPath(size, out, turns, travel_px, np.exp(poses[:, 3]), (poi_x, poi_y))


def _rotation(yaw: float, pitch: float, roll: float) -> NDArray[np.float64]:
    """Camera-to-world rotation: yaw about the vertical axis, then pitch, then roll.

    Image y points down, so a positive pitch (looking up) sends the centre ray to negative y.
    """
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return np.asarray(r_yaw @ r_pitch @ r_roll, dtype=np.float64)
