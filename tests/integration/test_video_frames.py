"""Reading a real H.264 video back: what it holds, its first and last frames, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.minimax import VIDEO_FPS, VIDEO_FRAMES, VIDEO_SIZE, sample_video

from kinema.domain.errors import GenerationCanceled
from kinema.media.frames import UnreadableVideo, read_end_frames


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(sample_video())  # brightens from its first frame to its last
    return path


def test_the_first_and_last_frames_and_what_the_video_holds(video: Path) -> None:
    frames = read_end_frames(video)

    assert (frames.size, frames.fps, frames.frames) == (VIDEO_SIZE, VIDEO_FPS, VIDEO_FRAMES)
    assert frames.first.shape == frames.last.shape == (VIDEO_SIZE.height, VIDEO_SIZE.width, 3)
    assert frames.first.mean() < frames.last.mean() - 100


def test_decoding_stops_when_asked(video: Path) -> None:
    checks: list[int] = []

    def check_stop() -> None:
        checks.append(1)
        raise GenerationCanceled("stopped")

    with pytest.raises(GenerationCanceled):
        read_end_frames(video, check_stop)
    assert checks == [1]


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100], ids=["empty", "garbage"])
def test_a_file_that_is_no_video_is_unreadable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(UnreadableVideo) as unreadable:
        read_end_frames(path)
    assert unreadable.value.reason.startswith("could not be read: ")
    assert str(unreadable.value).startswith("the video could not be read: ")


def test_a_truncated_video_is_unreadable(video: Path) -> None:
    video.write_bytes(video.read_bytes()[:400])
    with pytest.raises(UnreadableVideo):
        read_end_frames(video)
