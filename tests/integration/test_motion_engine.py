"""The motion engine end to end: real encodes, decoded and measured with PyAV and OpenCV."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from tests.conftest import RenderSmall, textured_image

from kinema.domain.errors import GenerationCanceled, InvalidInput
from kinema.domain.video import FrameSize, Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.motion.camera import plan_path
from kinema.engines.motion.engine import MotionEngine
from kinema.engines.motion.plan import CHINESE_COMMAND_NAMES, COMMAND_NAMES, CameraMove, plan_camera
from kinema.media.motion_analysis import clip_motion, total_motion


def top_level_atoms(path: Path) -> list[str]:
    data = path.read_bytes()
    atoms, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        atoms.append(kind.decode("latin-1"))
        offset += size if size else len(data)
    return atoms


@pytest.mark.parametrize(
    ("duration", "resolution", "size", "frames", "prompt"),
    [
        (6, Resolution.P768, (1366, 768), 150, "[Push in] a field"),
        # Size and length are what these two check; a locked-off camera encodes fastest.
        (10, Resolution.P512, (910, 512), 250, "[Static shot] a field"),
        (6, Resolution.P1080, (1920, 1080), 150, "[Static shot] a field"),
    ],
)
def test_output_is_browser_ready_h264(
    tmp_path: Path, duration: int, resolution: Resolution, size: tuple[int, int], frames: int, prompt: str
) -> None:
    image = textured_image(1280, 720)
    job = GenerationJob(prompt, image, duration, resolution, tmp_path / "clip.mp4")
    progress: list[float] = []
    result = MotionEngine().generate(job, progress.append, lambda: False)

    assert (result.size.width, result.size.height, result.frames, result.fps) == (*size, frames, 25)
    assert result.duration_s == duration
    with av.open(str(result.video_path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        assert context.name == "h264"
        assert context.profile == "High"
        assert context.pix_fmt == "yuv420p"
        assert (context.width, context.height) == size
        assert stream.average_rate == 25
        # Tagged BT.709, limited range, as the pixels were converted; players then show true colours.
        assert (context.colorspace, context.color_primaries, context.color_trc) == (1, 1, 1)
        assert context.color_range == 1
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == frames
    assert float(stream.duration * stream.time_base) == pytest.approx(duration, abs=0.05)
    atoms = top_level_atoms(result.video_path)
    assert atoms.index("moov") < atoms.index("mdat")  # +faststart: playable while downloading

    for still in (result.first_frame_path, result.last_frame_path):
        picture = cv2.imread(str(still))
        assert picture is not None
        assert picture.shape[:2] == (size[1], size[0])
    assert progress == sorted(progress)
    assert len(progress) == frames
    assert progress[-1] == 1.0


def direction(steps: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """Content motion over the clip: the centre's shift in x and y, and the magnification."""
    total = total_motion(steps)
    centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
    moved = total @ centre
    shift = moved[:2] / moved[2] - centre[:2]
    return float(shift[0]), float(shift[1]), float(np.sqrt(abs(np.linalg.det(total[:2, :2]))))


# (dx sign, dy sign, magnification: +1 bigger, -1 smaller, 0 unchanged) of the content.
EXPECTED = {
    CameraMove.PAN_LEFT: (1, 0, 0),
    CameraMove.PAN_RIGHT: (-1, 0, 0),
    CameraMove.TILT_UP: (0, 1, 0),
    CameraMove.TILT_DOWN: (0, -1, 0),
    CameraMove.ZOOM_IN: (0, 0, 1),
    CameraMove.ZOOM_OUT: (0, 0, -1),
    CameraMove.PUSH_IN: (0, 0, 1),
    CameraMove.PULL_OUT: (0, 0, -1),
    CameraMove.TRUCK_LEFT: (1, 0, 0),
    CameraMove.TRUCK_RIGHT: (-1, 0, 0),
    CameraMove.PEDESTAL_UP: (0, 1, 0),
    CameraMove.PEDESTAL_DOWN: (0, -1, 0),
    CameraMove.TRACKING_SHOT: (-1, 0, 1),
    CameraMove.STATIC_SHOT: (0, 0, 0),
}


@pytest.mark.parametrize("move", list(EXPECTED), ids=lambda move: move.value)
def test_each_command_moves_the_content_the_right_way(
    move: CameraMove, landscape: NDArray[np.uint8], render_small: RenderSmall, tmp_path: Path
) -> None:
    prompt = f"A valley at dawn [{COMMAND_NAMES[move]}]"
    video = render_small(landscape, prompt, tmp_path / "en.mp4")
    dx, dy, scale = direction(clip_motion(video, stride=5), 320, 180)
    expected_dx, expected_dy, expected_scale = EXPECTED[move]

    def sign(value: float, dead_zone: float) -> int:
        return 0 if abs(value) < dead_zone else int(np.sign(value))

    # Translations of a few pixels at the centre can come from a push drifting to its subject;
    # a real pan or truck moves the content by tens of pixels here.
    assert (sign(dx, 8.0), sign(dy, 8.0)) == (expected_dx, expected_dy)
    assert sign(scale - 1.0, 0.04) == expected_scale  # a pan bends perspective by ~2%
    if move is CameraMove.TRACKING_SHOT:
        assert scale < 1.1  # a slight push, not a zoom

    # The Chinese command films the very same camera path, so the very same video.
    size = FrameSize(320, 180)
    english = plan_path(plan_camera(prompt), size, frames=150, fps=25)
    chinese = plan_path(plan_camera(f"山谷 [{CHINESE_COMMAND_NAMES[move]}]"), size, frames=150, fps=25)
    for part in ("homographies", "turns", "travel", "push"):
        np.testing.assert_array_equal(getattr(chinese, part), getattr(english, part), err_msg=part)


def test_shake_wobbles_without_going_anywhere(
    landscape: NDArray[np.uint8], render_small: RenderSmall
) -> None:
    steps = clip_motion(render_small(landscape, "[Shake]"))
    centre_motion = steps[:, :2, 2] + steps[:, :2, :2] @ np.array([159.5, 89.5]) - np.array([159.5, 89.5])
    dx, dy, _ = direction(steps, 320, 180)
    assert abs(dx) < 3.0
    assert abs(dy) < 3.0
    assert np.abs(centre_motion).max() > 0.15  # it does move, frame to frame
    reversals = np.sum(np.diff(np.sign(centre_motion[:, 0])) != 0)
    assert reversals >= 10  # back and forth at 2-8 Hz over 6 s


@pytest.mark.parametrize(
    "prompt",
    [
        "[Pan left, Tilt up, Zoom out]",
        "[Shake, Pull out, Truck right]",
        "[Pedestal down] [Pan right, Zoom in] [Shake]",
    ],
)
def test_no_frame_ever_shows_past_the_picture(tmp_path: Path, prompt: str) -> None:
    colour = (200, 60, 90)
    image = np.full((600, 900, 3), colour, np.uint8)
    job = GenerationJob(prompt, image, 6, Resolution.P512, tmp_path / "flat.mp4", seed=5)
    MotionEngine().generate(job, lambda _: None, lambda: False)
    with av.open(str(job.video_path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24").astype(np.int16)
            assert np.abs(rgb - colour).max() <= 4, f"frame {frame.index} shows something else"


def test_same_prompt_image_and_seed_give_the_same_video(
    landscape: NDArray[np.uint8], render_small: RenderSmall, tmp_path: Path
) -> None:
    def frames(seed: int, name: str) -> list[bytes]:
        video = render_small(landscape, "[Shake, Push in]", tmp_path / name, seed=seed)
        with av.open(str(video)) as container:
            return [frame.to_ndarray().tobytes() for frame in container.decode(video=0)]

    first = frames(1, "a.mp4")
    assert first == frames(1, "b.mp4")
    assert first != frames(2, "c.mp4")


def test_cancel_stops_within_a_frame_and_leaves_nothing(tmp_path: Path, landscape: NDArray[np.uint8]) -> None:
    job = GenerationJob("[Pan left]", landscape, 10, Resolution.P768, tmp_path / "out" / "clip.mp4")
    progress: list[float] = []
    with pytest.raises(GenerationCanceled):
        MotionEngine().generate(job, progress.append, lambda: len(progress) >= 10)
    assert len(progress) == 10
    assert list((tmp_path / "out").iterdir()) == []


def test_text_to_video_is_refused_with_a_reason(tmp_path: Path) -> None:
    job = GenerationJob("a cat", None, 6, Resolution.P768, tmp_path / "clip.mp4")
    with pytest.raises(InvalidInput, match="cannot do text-to-video"):
        MotionEngine().generate(job, lambda _: None, lambda: False)


def test_unsupported_duration_is_refused(tmp_path: Path, landscape: NDArray[np.uint8]) -> None:
    job = GenerationJob("a cat", landscape, 7, Resolution.P768, tmp_path / "clip.mp4")
    with pytest.raises(InvalidInput, match="duration must be one of 6, 10"):
        MotionEngine().generate(job, lambda _: None, lambda: False)
