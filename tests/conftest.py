"""Fixtures shared by every kind of test: pictures made in code, and a small renderer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from tests.support.databases import DIALECTS, PostgresTemplates, fresh_database_url, postgres_url
from tests.support.http import ImageHost, TricklingHost, image_host, trickling_host
from tests.support.s3_server import S3Server, s3_server

from kinema.domain.video import FrameSize
from kinema.engines.motion.camera import plan_path
from kinema.engines.motion.plan import plan_camera
from kinema.engines.motion.render import FrameRenderer, render_clip
from kinema.media.encode import H264Writer
from kinema.settings import Settings
from kinema.store.database import Database


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each reason for skipping once, with how many tests it skipped, instead of a line per test."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        if isinstance(report.longrepr, tuple):
            reasons[str(report.longrepr[2]).removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.section("skipped, by reason", sep="-")
        for reason, count in reasons.most_common():
            terminalreporter.line(f"{count:>5}  {reason}")


def textured_image(width: int, height: int, seed: int = 0) -> NDArray[np.uint8]:
    """A picture with detail at every scale, so that motion can be measured anywhere in it."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((4, 1.0), (12, 0.6), (40, 0.35), (120, 0.2)):
        grid = rng.random((max(2, cells * height // width), cells, 3)).astype(np.float32)
        image += weight * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    image -= image.min()
    image /= image.max()
    return np.ascontiguousarray((image * 255).astype(np.uint8))


@pytest.fixture(scope="session")
def landscape() -> NDArray[np.uint8]:
    """A 16:9 textured picture, larger than the small test renders."""
    return textured_image(960, 540)


RenderSmall = Callable[[NDArray[np.uint8], str, Path], Path]


@pytest.fixture
def render_small(tmp_path: Path) -> RenderSmall:
    """Render a prompt at 320x180, 6 s at 25 fps, through the engine's renderer and encoder."""

    def render(image: NDArray[np.uint8], prompt: str, out: Path | None = None, seed: int = 0) -> Path:
        size = FrameSize(320, 180)
        path = plan_path(plan_camera(prompt), size, frames=150, fps=25, seed=seed)
        target = out or tmp_path / "clip.mp4"
        with H264Writer(target, size, 25) as writer:
            render_clip(FrameRenderer(image, path), writer, lambda _: None, lambda: False)
        return target

    return render


# The service: real databases, settings and apps.


@pytest.fixture(scope="session")
def postgres_templates() -> Iterator[PostgresTemplates | None]:
    url = postgres_url()
    if url is None:
        yield None
        return
    templates = PostgresTemplates(url)
    yield templates
    templates.close()


@pytest.fixture(params=DIALECTS)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_templates: PostgresTemplates | None
) -> Iterator[str]:
    """A fresh, migrated database for one test, on SQLite and again on PostgreSQL."""
    with fresh_database_url(request.param, tmp_path, postgres_templates) as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


MakeSettings = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> MakeSettings:
    """Settings for a test's own data folder and database; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "workers": 0,
            "allow_private_urls": True,
            "create_task_rate_limit": "1000/second",
            "record_info_rate_limit": "1000/second",
            "lease_seconds": 5,
            "poll_seconds": 0.2,
            # A stopping worker hands back at once, unless a test is about draining.
            "drain_seconds": 0,
        }
        return Settings(**(values | overrides))

    return make


@pytest.fixture
def image_server() -> Iterator[ImageHost]:
    with image_host() as host:
        yield host


@pytest.fixture
def slow_host() -> Iterator[TricklingHost]:
    """An image host that sends a valid PNG's first byte, then the rest only once released."""
    ok, encoded = cv2.imencode(".png", np.full((360, 640, 3), 90, np.uint8))
    assert ok
    with trickling_host(encoded.tobytes()) as host:
        yield host


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """An S3-speaking server on loopback (moto), one per test process; `S3Server.new_bucket`
    gives each test its own bucket."""
    with s3_server() as server:
        yield server


@pytest.fixture(scope="session")
def sample_jpeg() -> bytes:
    """A 16:9 JPEG that passes every acceptance rule."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(textured_image(640, 360, seed=3), cv2.COLOR_RGB2BGR))
    assert ok
    return encoded.tobytes()
