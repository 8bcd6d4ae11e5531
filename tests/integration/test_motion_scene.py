"""The still as a scene: parallax measured from encoded video, clean edges, effects, the model.

Renders are small (320x180 or less, a second or two) where the property does not depend on the
size; the parallax is measured with dense optical flow on the decoded frames, not with the
renderer's own numbers.
"""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from kinema.domain.video import FrameSize
from kinema.engines.motion.camera import plan_path
from kinema.engines.motion.effects import Effect, EffectRenderer, effects_in
from kinema.engines.motion.matte import Matte, U2NetMatter, model_path
from kinema.engines.motion.plan import plan_camera
from kinema.engines.motion.render import FrameRenderer, render_clip
from kinema.engines.motion.scene import flat, scene_cues
from kinema.media.encode import H264Writer

ASSETS = Path(__file__).resolve().parents[2] / "src" / "kinema" / "assets"
SMALL = FrameSize(320, 180)
FPS = 25


@pytest.fixture(scope="module")
def matter() -> U2NetMatter:
    return U2NetMatter()


@pytest.fixture(scope="module")
def figure_scene() -> tuple[NDArray[np.uint8], NDArray[np.bool_]]:
    """The bundled sample with a shaded figure standing in front, and where the figure is."""
    sample = cv2.cvtColor(cv2.imread(str(ASSETS / "sample.jpg")), cv2.COLOR_BGR2RGB)
    picture = cv2.resize(sample, (960, 540), interpolation=cv2.INTER_AREA)
    h, w = picture.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    body = ((xs - w * 0.5) / (w * 0.09)) ** 2 + ((ys - h * 0.64) / (h * 0.33)) ** 2 < 1
    head = ((xs - w * 0.5) / (w * 0.045)) ** 2 + ((ys - h * 0.22) / (h * 0.09)) ** 2 < 1
    shade = np.clip(1.2 - (xs - w * 0.45) / (w * 0.2), 0.4, 1.2)[..., None] * np.array([150.0, 110.0, 80.0])
    figure = body | head
    grain = cv2.GaussianBlur(np.random.default_rng(1).normal(0, 90, (h, w)).astype(np.float32), (0, 0), 7.0)
    lit = shade[figure] * np.where(head[figure], 1.2, 1.0)[:, None] + grain[figure][:, None]
    picture[figure] = np.clip(lit, 0, 255).astype(np.uint8)
    return picture, figure


def encode(renderer: FrameRenderer, path: Path) -> None:
    with H264Writer(path, renderer.size, FPS) as writer:
        render_clip(renderer, writer, lambda _: None, lambda: False)


def decoded(path: Path) -> list[NDArray[np.uint8]]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray") for frame in container.decode(video=0)]


def scene_renderer(
    picture: NDArray[np.uint8], prompt: str, matter: U2NetMatter, size: FrameSize = SMALL, frames: int = 50
) -> FrameRenderer:
    path = plan_path(plan_camera(prompt), size, frames, FPS)
    matte = matter.matte(picture)
    cues = scene_cues(picture, matte.alpha)
    return FrameRenderer(picture, path, cues=cues, alpha=matte.alpha)


def horizontal_motions(
    frames: list[NDArray[np.uint8]], regions: tuple[NDArray[np.bool_], ...]
) -> list[float]:
    """How far each region (as in the first frame) travels sideways over the clip, in pixels.

    Dense flow between consecutive frames (each step well under a pixel or two, where
    Farneback's estimate is accurate), its median over the most textured part of each region,
    each region's mask carried along by the motion measured so far.
    """
    travelled = [0.0 for _ in regions]
    for before, after in itertools.pairwise(frames):
        flow = cv2.calcOpticalFlowFarneback(before, after, None, 0.5, 5, 31, 5, 7, 1.5, 0)[..., 0]
        # Flow is only well defined where there is texture in both directions.
        corners = cv2.cornerMinEigenVal(before, 5)
        for index, region in enumerate(regions):
            carried = np.roll(region, round(travelled[index]), axis=1)
            textured = carried & (corners > np.quantile(corners[carried], 0.6))
            travelled[index] += float(np.median(flow[textured]))
    return travelled


def regions(
    figure: NDArray[np.bool_], renderer: FrameRenderer, frame: NDArray[np.uint8]
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The figure (eroded) and the textured background just beside it, as the first frame
    shows them (the camera's overscan crops the picture)."""
    h, w = frame.shape
    to_picture = np.diag(
        [figure.shape[1] / renderer.source_size.width, figure.shape[0] / renderer.source_size.height, 1.0]
    )
    to_picture[:2, 2] = 0.5 * np.diag(to_picture)[:2] - 0.5
    matrix = to_picture @ renderer.matrix(0)
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    small = cv2.warpPerspective(figure.astype(np.uint8), matrix, (w, h), flags=flags)
    subject = cv2.erode(small, np.ones((7, 7), np.uint8)).astype(bool)
    near = cv2.dilate(small, np.ones((15, 15), np.uint8)).astype(bool)
    beside = cv2.dilate(small, np.ones((1, w // 4 * 2 + 1), np.uint8)).astype(bool)
    rows = np.nonzero(small.any(axis=1))[0]
    band = np.zeros((h, w), bool)
    band[rows[0] : rows[-1] + 1] = True
    band &= beside  # a pan's rotation moves the edges of the frame more than its middle
    texture = np.abs(cv2.Laplacian(frame.astype(np.float32), cv2.CV_32F)) > 2.0
    background = band & ~near & cv2.dilate(texture.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return subject, background


def test_truck_moves_the_subject_further_than_the_background(
    tmp_path: Path, matter: U2NetMatter, figure_scene: tuple[NDArray[np.uint8], NDArray[np.bool_]]
) -> None:
    picture, figure = figure_scene
    renderer = scene_renderer(picture, "[Truck left]", matter)
    encode(renderer, tmp_path / "truck.mp4")
    frames = decoded(tmp_path / "truck.mp4")
    subject, background = regions(figure, renderer, frames[0])
    near, far = horizontal_motions(frames, (subject, background))
    assert near > 8.0  # the camera moves left: the scene moves right
    assert near >= 1.5 * far
    assert far > 0.5  # the background moves too, only less


def test_pan_moves_subject_and_background_alike(
    tmp_path: Path, matter: U2NetMatter, figure_scene: tuple[NDArray[np.uint8], NDArray[np.bool_]]
) -> None:
    picture, figure = figure_scene
    renderer = scene_renderer(picture, "[Pan left]", matter)
    encode(renderer, tmp_path / "pan.mp4")
    frames = decoded(tmp_path / "pan.mp4")
    subject, background = regions(figure, renderer, frames[0])
    near, far = horizontal_motions(frames, (subject, background))
    assert near > 8.0
    assert abs(near - far) <= 0.1 * abs(near)


# --- Clean edges --------------------------------------------------------------------------------

LIGHT, DARK = 180, 70  # the checkerboard's two greys
SUBJECT_RGB = np.array([210.0, 40.0, 150.0])
LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])


class KnownMatte:
    """A matter that knows the answer: the synthetic subject's own anti-aliased disc."""

    def __init__(self, alpha: NDArray[np.float32]) -> None:
        self.alpha = alpha

    def matte(self, image: NDArray[np.uint8]) -> Matte:
        return Matte(self.alpha, float((self.alpha > 0.5).mean()), 1.0)


def checkerboard_with_disc() -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    h, w = 360, 640
    ys, xs = np.mgrid[0:h, 0:w]
    board = np.where(((xs // 24) + (ys // 24)) % 2 == 0, LIGHT, DARK).astype(np.float32)
    distance = np.sqrt((xs - w * 0.5) ** 2 + (ys - h * 0.55) ** 2)
    alpha = np.clip(90.5 - distance, 0.0, 1.0).astype(np.float32)
    picture = board[..., None] * (1 - alpha[..., None]) + SUBJECT_RGB * alpha[..., None]
    return np.round(picture).astype(np.uint8), alpha


@pytest.mark.parametrize(
    "prompt",
    [
        "[Truck left, Pedestal up, Push in]",
        "[Truck right, Pedestal down, Pull out]",
        "[Tracking shot, Shake]",
    ],
)
def test_no_hole_halo_or_doubled_edge(prompt: str) -> None:
    picture, alpha = checkerboard_with_disc()
    matte = KnownMatte(alpha).matte(picture)
    path = plan_path(plan_camera(prompt), SMALL, 150, FPS)
    renderer = FrameRenderer(picture, path, cues=scene_cues(picture, matte.alpha), alpha=matte.alpha)
    subject_luma = float(SUBJECT_RGB @ LUMA_WEIGHTS)
    for index in range(0, renderer.frames, 5):
        frame = renderer.render_rgb(index).astype(np.float32)
        # How much subject colour each pixel holds, from its two colour differences.
        t_rg = (frame[..., 0] - frame[..., 1]) / (SUBJECT_RGB[0] - SUBJECT_RGB[1])
        t_gb = (frame[..., 1] - frame[..., 2]) / (SUBJECT_RGB[1] - SUBJECT_RGB[2])
        share = np.clip((t_rg + t_gb) / 2, 0.0, 1.0)
        apart = cv2.distanceTransform((share <= 0.5).astype(np.uint8), cv2.DIST_L2, 5)
        # Away from the subject, only the two greys, what was uncovered included: no smear of
        # the subject's colour, no black of a hole. (Closer, 4:2:0 chroma spreads the edge.)
        grey = frame[apart > 4]
        assert np.abs(grey[:, 0] - grey[:, 1]).max() <= 8, index
        assert np.abs(grey[:, 1] - grey[:, 2]).max() <= 8, index
        assert grey.min() >= DARK - 6, index
        assert grey.max() <= LIGHT + 6, index
        # Along the edge, brightness stays between the colours that meet there: no dark or
        # light ring.
        edge = (apart > 0) & (apart <= 4)
        luma = frame[edge] @ LUMA_WEIGHTS
        assert luma.min() >= min(DARK, subject_luma) - 8, index
        assert luma.max() <= LIGHT + 8, index


# --- Effects ----------------------------------------------------------------------------------


def effects_picture() -> NDArray[np.uint8]:
    """Sky above, textured ground, blue water below, a warm light and a neon sign."""
    rng = np.random.default_rng(3)
    h, w = 180, 320
    picture = np.zeros((h, w, 3), np.float32)
    rows = np.arange(h)[:, None]
    sky = rows < 70
    picture[:] = np.where(sky[..., None], [150, 185, 230], [90, 110, 70])
    picture[120:] = [40, 90, 170]
    grain = cv2.GaussianBlur(rng.normal(0, 18, (h, w)).astype(np.float32), (0, 0), 1.0)
    picture += grain[..., None]
    cv2.circle(picture, (60, 100), 9, (255, 190, 90), -1)
    cv2.rectangle(picture, (240, 84), (290, 100), (255, 40, 230), -1)
    return np.clip(picture, 0, 255).astype(np.uint8)


def effect_frames(prompt: str, seed: int = 0, frames: int = 40) -> list[NDArray[np.uint8]]:
    picture = effects_picture()
    path = plan_path(plan_camera(prompt), SMALL, frames, FPS, seed=seed)
    cues = flat(scene_cues(picture, None))
    effects = effects_in(prompt)
    drawer = EffectRenderer(effects, path, FPS, seed, cues) if effects else None
    renderer = FrameRenderer(picture, path, cues=cues, effects=drawer)
    return [renderer.render_rgb(index) for index in range(frames)]


@pytest.mark.parametrize("effect", list(Effect))
def test_each_effect_moves_in_a_static_shot(effect: Effect) -> None:
    frames = effect_frames(f"[Static shot] {effect.value}")
    changes = [np.abs(a.astype(int) - b.astype(int)).max() for a, b in itertools.pairwise(frames)]
    seen = max(np.abs(frames[0].astype(int) - frame.astype(int)).max() for frame in frames[1:])
    assert seen >= 12, effect  # clearly visible at some point
    assert sum(change > 0 for change in changes) >= 2, effect  # it moves, not only once


def test_a_prompt_without_effect_words_is_a_still_in_a_static_shot() -> None:
    frames = effect_frames("[Static shot] a quiet field at noon")
    assert all(np.array_equal(frames[0], frame) for frame in frames[1:])


def test_what_the_prompt_does_not_name_stays_put() -> None:
    """Clouds drift in the sky; the ground and the water below do not move."""
    frames = effect_frames("[Static shot] clouds")
    sky_change = np.abs(frames[0][:60].astype(int) - frames[-1][:60].astype(int)).mean()
    below_change = np.abs(frames[0][90:].astype(int) - frames[-1][90:].astype(int)).max()
    assert sky_change > 1.0
    assert below_change <= 2


def test_effects_are_the_same_for_a_seed_and_differ_between_seeds() -> None:
    first = effect_frames("[Static shot] snow", seed=5, frames=6)
    again = effect_frames("[Static shot] snow", seed=5, frames=6)
    other = effect_frames("[Static shot] snow", seed=6, frames=6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[3], other[3])


# --- The model ----------------------------------------------------------------------------------


def test_the_model_loads_from_the_installed_package_with_no_network(
    monkeypatch: pytest.MonkeyPatch, figure_scene: tuple[NDArray[np.uint8], NDArray[np.bool_]]
) -> None:
    def no_network(*args: object, **kwargs: object) -> socket.socket:
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    path = model_path()
    assert path.name == "u2netp.onnx"
    assert "site-packages" in path.parts or "dist-packages" in path.parts
    picture, figure = figure_scene
    matte = U2NetMatter(path).matte(picture)
    assert matte.verdict == "subject"
    found = matte.alpha > 0.5
    overlap = (found & figure).sum() / (found | figure).sum()
    assert overlap > 0.7
