"""The camera chips' previews: small looping WebPs of each move, made once and kept."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from kinema.engines.camera_previews import PREVIEW_SIZE, CameraPreviews, render_preview
from kinema.engines.motion.plan import CameraMove
from kinema.storage.own import read_sample


def frames_of(data: bytes) -> list[np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP"
        assert image.size == (PREVIEW_SIZE.width, PREVIEW_SIZE.height)
        if getattr(image, "n_frames", 1) > 1:
            assert image.info.get("loop") == 0  # for ever
        return [np.asarray(frame.convert("RGB"), dtype=np.int16) for frame in ImageSequence.Iterator(image)]


def test_a_preview_is_a_small_loop_that_moves() -> None:
    picture = read_sample("sample.jpg")
    assert picture is not None
    moving = render_preview(CameraMove.PAN_LEFT, picture)
    assert len(moving) < 20_000
    frames = frames_of(moving)
    assert len(frames) > 5
    assert np.abs(frames[0] - frames[-1]).mean() > 2  # the camera moved
    # Locked off: every frame alike, so one picture is the whole preview.
    still = frames_of(render_preview(CameraMove.STATIC_SHOT, picture))
    assert np.abs(still[0] - still[-1]).mean() < 1


def test_previews_are_made_once_and_kept(tmp_path: Path) -> None:
    picture = read_sample("sample.jpg")
    assert picture is not None
    first = CameraPreviews(tmp_path, picture).get(CameraMove.TILT_UP)
    kept = list(tmp_path.rglob("*.webp"))
    assert [path.name for path in kept] == ["tilt_up.webp"]
    # Another process (or a restart) finds it made: a different picture does not replace it.
    grey = io.BytesIO()
    Image.new("RGB", (640, 360), "grey").save(grey, format="JPEG")
    assert CameraPreviews(tmp_path, grey.getvalue()).get(CameraMove.TILT_UP) == first
    assert list(tmp_path.rglob("*.part")) == []
