"""The installed `kinema` command, run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import av
import cv2
from tests.conftest import textured_image
from tests.support.minimax import API_KEY, fake_minimax

KINEMA = Path(sys.executable).with_name("kinema")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    return subprocess.run([str(KINEMA), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_render_writes_a_video_and_says_so(tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), textured_image(800, 600))
    done = run(
        "render",
        str(image),
        "--prompt",
        "[Pan right] a garden",
        "--resolution",
        "512P",
        "-o",
        "garden.mp4",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"wrote garden\.mp4: 682x512, 150 frames, 6 s of video in \d+\.\d s", summary)
    with av.open(str(tmp_path / "garden.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 150
    assert (tmp_path / "garden.first.jpg").is_file()
    assert (tmp_path / "garden.last.jpg").is_file()


def test_a_bad_image_gives_one_clear_line_and_a_failure_status(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("these are not pixels")
    done = run("render", "notes.png", "--prompt", "x", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == "error: image must be JPEG, PNG or WebP; the data is not a recognised image"
    assert not (tmp_path / "out.mp4").exists()


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    done = run("render", "nowhere.jpg", "--prompt", "x", cwd=tmp_path)
    assert done.returncode != 0
    assert "nowhere.jpg" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_the_options(tmp_path: Path) -> None:
    done = run("render", "--help", cwd=tmp_path)
    assert done.returncode == 0
    for option in ("--prompt", "--duration", "--resolution", "--seed", "--output"):
        assert option in done.stdout


def test_render_with_the_minimax_engine(tmp_path: Path) -> None:
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), textured_image(800, 600))
    with fake_minimax() as upstream:
        env = dict(
            os.environ,
            COLUMNS="120",
            NO_COLOR="1",
            KINEMA_MINIMAX_API_KEY=API_KEY,
            KINEMA_MINIMAX_BASE_URL=upstream.base_url,
            KINEMA_MINIMAX_POLL_SECONDS="0.05",
            KINEMA_MINIMAX_RATE_LIMIT="1000/minute",
        )
        done = subprocess.run(
            [
                str(KINEMA),
                "render",
                str(image),
                "--prompt",
                "[Pan left] a garden",
                "--engine",
                "minimax",
                "-o",
                "g.mp4",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert len(upstream.submissions) == 1
    with av.open(str(tmp_path / "g.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "h264"


def test_render_and_generate_warn_of_an_unknown_camera_command_first(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("these are not pixels")
    warning = "warning: [Pan lft] is not a camera command; did you mean [Pan left]?"
    rendered = run("render", "notes.png", "--prompt", "[Pan lft] a harbour", cwd=tmp_path)
    assert rendered.returncode == 1
    assert rendered.stderr.splitlines()[:2] == [
        warning,
        "camera: Push in (the default: no camera command found)",
    ]
    env = dict(
        os.environ, COLUMNS="120", NO_COLOR="1", KINEMA_BASE_URL="http://127.0.0.1:9", KINEMA_API_KEY="kn_x"
    )
    cv2.imwrite(str(tmp_path / "photo.png"), textured_image(400, 300))
    generated = subprocess.run(
        [str(KINEMA), "generate", "photo.png", "--prompt", "[Pan lft] a harbour"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert generated.returncode == 1
    assert generated.stderr.splitlines()[0] == warning
    assert generated.stderr.splitlines()[-1] == "error: cannot reach http://127.0.0.1:9: connection refused"
    quiet = run("render", "notes.png", "--prompt", "[Pan left] a harbour", cwd=tmp_path)
    assert "warning" not in quiet.stderr
