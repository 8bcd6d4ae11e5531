"""The camera path and its placement on the picture, checked on the matrices themselves."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kinema.domain.video import FrameSize
from kinema.engines.motion.camera import ease, plan_path
from kinema.engines.motion.plan import COMMAND_NAMES, CameraMove, plan_camera
from kinema.engines.motion.render import MARGIN_PX, place_world
from kinema.media.motion_analysis import smoothness

SIZE = FrameSize(1366, 768)
CENTRE = np.array([(SIZE.width - 1) / 2, (SIZE.height - 1) / 2, 1.0])


def world_point(h: np.ndarray, point: np.ndarray = CENTRE) -> np.ndarray:
    mapped = h @ point
    return mapped[:2] / mapped[2]


def test_ease_starts_and_ends_at_rest() -> None:
    t = np.linspace(0.0, 1.0, 2001)
    progress = ease(t)
    velocity = np.diff(progress)
    assert progress[0] == 0.0
    assert progress[-1] == pytest.approx(1.0)
    assert (velocity >= 0).all()
    assert velocity[0] < 1e-6
    assert velocity[-1] < 1e-6
    assert np.abs(np.diff(velocity)).max() < 1e-5  # no jolt: velocity is continuous


@pytest.mark.parametrize(
    ("move", "direction"),
    [
        # Where the centre of the last frame looks, relative to where the first looked.
        (CameraMove.PAN_LEFT, (-1, 0)),
        (CameraMove.PAN_RIGHT, (1, 0)),
        (CameraMove.TILT_UP, (0, -1)),
        (CameraMove.TILT_DOWN, (0, 1)),
        (CameraMove.TRUCK_LEFT, (-1, 0)),
        (CameraMove.TRUCK_RIGHT, (1, 0)),
        (CameraMove.PEDESTAL_UP, (0, -1)),
        (CameraMove.PEDESTAL_DOWN, (0, 1)),
    ],
)
def test_moves_look_where_they_say(move: CameraMove, direction: tuple[int, int]) -> None:
    path = plan_path(plan_camera(f"[{COMMAND_NAMES[move]}]"), SIZE, 150, 25)
    shift = world_point(path.homographies[-1]) - world_point(path.homographies[0])
    assert np.sign(np.round(shift / 10)).tolist() == list(direction)


def test_pan_is_a_rotation_not_a_slide() -> None:
    """A turning camera sees the far edge of the frame stretch: the homography is projective."""
    path = plan_path(plan_camera("[Pan right]"), SIZE, 150, 25)
    assert abs(path.homographies[-1][2, 0]) > 1e-6
    truck = plan_path(plan_camera("[Truck right]"), SIZE, 150, 25)
    assert truck.homographies[-1][2, 0] == 0.0


@pytest.mark.parametrize(
    ("prompt", "magnifies"),
    [("[Zoom in]", True), ("[Push in]", True), ("[Zoom out]", False), ("[Pull out]", False)],
)
def test_zooms_and_dollies_change_magnification(prompt: str, magnifies: bool) -> None:
    path = plan_path(plan_camera(prompt), SIZE, 150, 25)
    first = np.linalg.det(path.homographies[0][:2, :2])
    last = np.linalg.det(path.homographies[-1][:2, :2])
    assert (last < first) == magnifies  # fewer world pixels per output pixel: magnified


def test_sequential_brackets_split_the_clip() -> None:
    path = plan_path(plan_camera("[Pan left] then [Tilt up]"), SIZE, 150, 25)
    middle = world_point(path.homographies[75]) - world_point(path.homographies[0])
    end = world_point(path.homographies[-1]) - world_point(path.homographies[75])
    assert middle[0] < -50
    assert abs(middle[1]) < 5
    assert end[1] < -50
    assert abs(end[0]) < 5


def test_magnitude_grows_with_duration_but_less_than_linearly() -> None:
    six = plan_path(plan_camera("[Truck right]"), SIZE, 150, 25)
    ten = plan_path(plan_camera("[Truck right]"), SIZE, 250, 25)
    travel_six = world_point(six.homographies[-1])[0] - world_point(six.homographies[0])[0]
    travel_ten = world_point(ten.homographies[-1])[0] - world_point(ten.homographies[0])[0]
    assert travel_six < travel_ten < travel_six * 10 / 6


def test_shake_is_deterministic_for_a_seed() -> None:
    plan = plan_camera("[Shake]")
    first = plan_path(plan, SIZE, 150, 25, seed=3).homographies
    again = plan_path(plan, SIZE, 150, 25, seed=3).homographies
    other = plan_path(plan, SIZE, 150, 25, seed=4).homographies
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    jitter = np.array([world_point(h) for h in first]) - CENTRE[:2]
    assert 1.0 < np.abs(jitter).max() < 20.0  # a few pixels, not a earthquake


@pytest.mark.parametrize("prompt", ["[Push in]", "[Pan right]", "[Zoom out]", "[Tilt down]"])
def test_the_drawn_motion_is_smooth(prompt: str) -> None:
    """The renderer's own motion (before any encoder) eases without jerks or reversals."""
    path = plan_path(plan_camera(prompt), SIZE, 150, 25)
    h = path.homographies
    steps = np.array([h[i + 1] @ np.linalg.inv(h[i]) for i in range(len(h) - 1)])
    # World-to-frame motion of consecutive frames is the inverse: content moves opposite the camera.
    content = np.array([np.linalg.inv(step) for step in steps])
    result = smoothness(content, SIZE.width, SIZE.height, noise_floor=0.0)
    assert result.mean_acceleration < 0.05
    assert result.reversals == 0


COMMAND_TEXT = st.sampled_from(
    [f"[{name}]" for name in COMMAND_NAMES.values()] + ["[Pan left, Zoom out, Shake]"]
)


@settings(max_examples=60, deadline=None)
@given(
    prompt=st.lists(COMMAND_TEXT, min_size=1, max_size=4).map(" ".join),
    aspect=st.floats(min_value=0.4, max_value=2.5),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_no_frame_samples_outside_the_picture(prompt: str, aspect: float, seed: int) -> None:
    width, height = (1200, round(1200 / aspect)) if aspect >= 1 else (round(1200 * aspect), 1200)
    size = FrameSize(2 * round(aspect * 200), 400) if aspect >= 1 else FrameSize(400, 2 * round(200 / aspect))
    path = plan_path(plan_camera(prompt), size, 150, 25, seed=seed)
    placement = place_world(path, width, height)
    w, h = size.width - 1.0, size.height - 1.0
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float).T
    mapped = placement.world_to_source @ path.homographies @ corners
    xy = mapped[:, :2] / mapped[:, 2:3]
    source = placement.source_size
    assert xy[:, 0].min() >= MARGIN_PX - 1e-6
    assert xy[:, 1].min() >= MARGIN_PX - 1e-6
    assert xy[:, 0].max() <= source.width - 1 - MARGIN_PX + 1e-6
    assert xy[:, 1].max() <= source.height - 1 - MARGIN_PX + 1e-6
