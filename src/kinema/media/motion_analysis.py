"""Camera motion measured from a video itself, for checking what an engine made.

Consecutive frames are registered with ECC (enhanced correlation coefficient) under an affine
model, which gives the motion of the picture's content from one frame to the next with
sub-pixel precision. From that: where the content went over the clip (direction tests), and
how smoothly it got there (acceleration and reversals of the frame-to-frame motion).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from numpy.typing import NDArray

Steps = NDArray[np.float64]  # (N - 1) x 3 x 3 content motions between consecutive frames


def gray_frames(path: Path, scale: float = 1.0) -> Iterator[NDArray[np.float32]]:
    """Decode a video's frames as float32 luma, optionally resized by `scale`."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray").astype(np.float32)
            if scale != 1.0:
                height, width = gray.shape
                size = (round(width * scale), round(height * scale))
                gray = np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
            yield gray


def register(previous: NDArray[np.float32], current: NDArray[np.float32]) -> NDArray[np.float64]:
    """The affine motion (3x3) taking content at x in `previous` to its place in `current`."""
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-7)
    _, found = cv2.findTransformECC(previous, current, warp, cv2.MOTION_AFFINE, criteria, None)
    return np.vstack([np.asarray(found, dtype=np.float64), [0.0, 0.0, 1.0]])


def clip_motion(path: Path, scale: float = 1.0, stride: int = 1) -> Steps:
    """Content motion between every `stride`-th frame of a clip, in full-resolution pixels.

    A stride above one trades time resolution for speed, for checks of direction only.
    """
    to_full = np.diag([1.0 / scale, 1.0 / scale, 1.0])
    from_full = np.diag([scale, scale, 1.0])
    steps: list[NDArray[np.float64]] = []
    previous: NDArray[np.float32] | None = None
    for index, current in enumerate(gray_frames(path, scale)):
        if index % stride:
            continue
        if previous is not None:
            steps.append(to_full @ register(previous, current) @ from_full)
        previous = current
    return np.array(steps).reshape(-1, 3, 3)


def total_motion(steps: Steps) -> NDArray[np.float64]:
    """The content motion from the first frame to the last: the steps composed."""
    total = np.eye(3)
    for step in steps:
        total = step @ total
    return total


def corner_displacements(steps: Steps, width: int, height: int) -> NDArray[np.float64]:
    """How far each frame corner's content moved at each step: (N - 1) x 4 x 2 pixels."""
    corners = np.array(
        [[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float
    ).T
    moved = steps @ corners
    moved = moved[:, :2] / moved[:, 2:3]
    return np.asarray(np.moveaxis(moved - corners[:2][None], 1, 2), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Smoothness:
    """How evenly the content moves; a jittery crop shows up in both figures."""

    mean_acceleration: float  #: Mean change of the per-frame corner motion, px/frame^2.
    max_acceleration: float  #: Largest such change.
    reversals: int  #: Steps where a corner moved backwards against its overall direction.


def smoothness(steps: Steps, width: int, height: int, noise_floor: float = 0.05) -> Smoothness:
    """Acceleration and reversals of the corners' motion; `noise_floor` px of backward motion
    is tolerated as measurement noise where the camera eases to a stop."""
    motion = corner_displacements(steps, width, height)
    acceleration = np.linalg.norm(np.diff(motion, axis=0), axis=2)
    overall = motion.sum(axis=0)
    direction = overall / np.maximum(np.linalg.norm(overall, axis=1, keepdims=True), 1e-9)
    along = np.einsum("tcx,cx->tc", motion, direction)
    return Smoothness(
        mean_acceleration=float(acceleration.mean()) if acceleration.size else 0.0,
        max_acceleration=float(acceleration.max()) if acceleration.size else 0.0,
        reversals=int((along < -noise_floor).any(axis=1).sum()),
    )
