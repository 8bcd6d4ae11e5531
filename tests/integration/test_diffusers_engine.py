"""The diffusers engine end to end, on tiny randomly initialised Wan 2.2 and LTX-Video models.

The models are built in code (`tests.support.tiny_diffusers`) and saved in the diffusers folder
layout, so the engine loads them exactly as it loads real weights; nothing is downloaded. They
are small enough that a whole 6 or 10 s job, clip continuation included, takes seconds on a CPU.
Each engine test runs twice: with the engine in this process, and in a process of its own as
the worker runs it (`kinema.engines.isolated`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from tests.conftest import textured_image

from kinema.domain.errors import EngineMisconfigured, GenerationCanceled
from kinema.domain.video import FrameSize, Resolution
from kinema.engines.base import Engine, GenerationJob
from kinema.engines.diffusers.config import DiffusersConfig
from kinema.engines.diffusers.plan import LTX, WAN, model_prompt, plan_clips, source_frames, working_size
from kinema.engines.isolated import IsolatedEngine, isolated
from kinema.media.encode import EncoderSettings

HAS_EXTRA = all(importlib.util.find_spec(name) for name in ("torch", "diffusers", "transformers"))
needs_extra = pytest.mark.skipif(
    not HAS_EXTRA, reason="the diffusers extra is not installed (pip install -e '.[dev,diffusers]')"
)

STEPS = 2
#: About 64x32 frames: the engine path runs in full, the models' work is next to nothing.
TINY = {"steps": STEPS, "working_pixels": 2048}


# The plan: pure arithmetic, no models.


def test_working_size_is_the_models_native_size_for_its_own_aspect_ratio() -> None:
    assert working_size(FrameSize(1366, 768), WAN.working_pixels, 32) == FrameSize(1280, 704)
    assert working_size(FrameSize(768, 1366), WAN.working_pixels, 32) == FrameSize(704, 1280)
    assert working_size(FrameSize(768, 512), LTX.working_pixels, 32) == FrameSize(768, 512)
    four_three = working_size(FrameSize(682, 512), WAN.working_pixels, 32)
    assert four_three.width % 32 == four_three.height % 32 == 0
    assert four_three.width / four_three.height == pytest.approx(4 / 3, rel=0.05)
    assert working_size(FrameSize(1920, 16), 2048, 32).height == 32  # never below one cell


def test_close_frame_rates_are_conformed_and_others_sampled_by_time() -> None:
    assert source_frames(150, 25, 24) == list(range(150))  # Wan's 24 fps plays at 25
    assert source_frames(150, 25, 25) == list(range(150))
    assert source_frames(5, 25, 16) == [0, 1, 1, 2, 3]
    thirty = source_frames(250, 25, 30)
    assert len(thirty) == 250
    assert thirty[-1] == 299  # 10 s of 30 fps frames, nearest in time


def test_clips_are_balanced_and_cover_the_frames() -> None:
    assert plan_clips(150, 121, 4) == [77, 77]  # Wan: 1 + 76 + 76 = 153 >= 150
    assert plan_clips(250, 121, 4) == [85, 85, 85]
    assert plan_clips(150, 257, 8) == [153]  # LTX: one clip
    assert plan_clips(250, 257, 8) == [257]
    for frames in range(1, 400, 7):
        for step, longest in ((4, 121), (8, 257), (4, 17)):
            clips = plan_clips(frames, longest, step)
            assert 1 + sum(length - 1 for length in clips) >= frames
            assert all(length <= longest and (length - 1) % step == 0 for length in clips)


def test_camera_commands_become_words_for_the_text_encoder() -> None:
    assert (
        model_prompt("[Pan left, Zoom in] a cat  on a wall") == "Camera: pan left, zoom in. a cat on a wall"
    )
    assert model_prompt("a lake [Static shot]") == "a lake Camera: static shot."


# The engine, on tiny models.


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tiny models, built and saved once per test session."""
    if not HAS_EXTRA:
        pytest.skip("the diffusers extra is not installed")
    import torch
    from tests.support.tiny_diffusers import save_tiny_ltx, save_tiny_wan

    # Tiny models gain nothing from a second thread, and spinning OpenMP workers stall badly on
    # a busy two-core machine.
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("weights")
    return {"wan": save_tiny_wan(root / "wan"), "ltx": save_tiny_ltx(root / "ltx")}


def tiny_config(weights: dict[str, Path], model: str, **overrides: object) -> DiffusersConfig:
    values: dict[str, object] = {"model": model, "weights_dir": weights[model], **TINY}
    if model == "wan":
        values["clip_frames"] = 81  # 6 s takes two clips: continuation runs
    return DiffusersConfig(**(values | overrides))


#: The production encoder is tested with the motion engine and in the first test below; the others
#: use libx264's fastest preset, since encoding is most of what a tiny model's job costs.
FAST_ENCODER = EncoderSettings(preset="ultrafast", x264_params="")


HERE = "in this process"
IN_CHILD = "in a child process"
#: The video and a cancel, also through a process of the engine's own: what crosses between
#: the two is the same for every job, and a child costs seconds to start.
BOTH_PLACES = pytest.mark.parametrize("place", [HERE, IN_CHILD], indirect=True)


@pytest.fixture(scope="module")
def place(request: pytest.FixtureRequest) -> str:
    """Where the engine runs: here, or (for the tests marked `BOTH_PLACES`) in a process of its own too."""
    return str(getattr(request, "param", HERE))


def build_engine(
    weights: dict[str, Path],
    model: str,
    place: str,
    encoder: EncoderSettings | None = FAST_ENCODER,
    **overrides: object,
) -> Engine:
    from tests.support.tiny_diffusers import single_threaded_engine

    build = partial(single_threaded_engine, tiny_config(weights, model, **overrides), encoder)
    engine: Engine = IsolatedEngine(build) if place == IN_CHILD else build()
    engine.setup()
    return engine


def close(engine: Engine) -> None:
    if isinstance(engine, IsolatedEngine):
        engine.close()


MakeEngine = Callable[..., Engine]


@pytest.fixture
def make_engine(tiny_weights: dict[str, Path], place: str) -> Iterator[MakeEngine]:
    """Set-up engines of this test's place, closed after the test."""
    made: list[Engine] = []

    def make(model: str, encoder: EncoderSettings | None = FAST_ENCODER, **overrides: object) -> Engine:
        made.append(build_engine(tiny_weights, model, place, encoder, **overrides))
        return made[-1]

    yield make
    for engine in made:
        close(engine)


@pytest.fixture(scope="module")
def engines(tiny_weights: dict[str, Path], place: str) -> Iterator[dict[str, Engine]]:
    """A warm engine per model, shared: every generation reuses the loaded pipeline."""
    warm = {model: build_engine(tiny_weights, model, place) for model in ("wan", "ltx")}
    yield warm
    for engine in warm.values():
        close(engine)


@pytest.fixture(scope="module")
def picture() -> NDArray[np.uint8]:
    return textured_image(160, 120, seed=5)  # 4:3


def job_for(image: NDArray[np.uint8], out: Path, duration: int = 6, seed: int = 1) -> GenerationJob:
    return GenerationJob(
        "[Push in] a cat walking on a wall", image, duration, Resolution.P512, out, seed=seed
    )


def decoded_frames(path: Path) -> NDArray[np.uint8]:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@needs_extra
@BOTH_PLACES
@pytest.mark.parametrize(("model", "duration", "clips"), [("wan", 6, 2), ("ltx", 10, 1)])
def test_video_is_h264_of_the_exact_size_length_and_rate(
    make_engine: MakeEngine,
    picture: NDArray[np.uint8],
    tmp_path: Path,
    model: str,
    duration: int,
    clips: int,
) -> None:
    engine = make_engine(model, encoder=None)
    job = job_for(picture, tmp_path / "clip.mp4", duration)
    progress: list[float] = []
    result = engine.generate(job, progress.append, lambda: False)

    frames = duration * 25
    assert (result.size.width, result.size.height, result.fps, result.frames) == (682, 512, 25, frames)
    with av.open(str(result.video_path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        assert context.name == "h264"
        assert context.profile == "High"
        assert context.pix_fmt == "yuv420p"
        assert (context.width, context.height) == (682, 512)
        assert stream.average_rate == 25
        assert sum(1 for _ in container.decode(video=0)) == frames
    for still in (result.first_frame_path, result.last_frame_path):
        picture_read = cv2.imread(str(still))
        assert picture_read is not None
        assert picture_read.shape[:2] == (512, 682)
    assert len(progress) == clips * (STEPS + 1)  # every denoising step, then each clip's encoding
    assert progress == sorted(progress)
    assert progress[0] > 0
    assert progress[-1] == 1.0


@needs_extra
def test_same_seed_same_video_other_seed_another(
    engines: dict[str, Engine], picture: NDArray[np.uint8], tmp_path: Path
) -> None:
    engine = engines["wan"]
    results = [
        engine.generate(job_for(picture, tmp_path / f"{name}.mp4", seed=seed), lambda _: None, lambda: False)
        for name, seed in (("a", 7), ("b", 7), ("c", 8))
    ]
    first, again, other = results
    # The stills are the engine's frames exactly, the last one made by the model.
    assert first.last_frame_path.read_bytes() == again.last_frame_path.read_bytes()
    assert first.last_frame_path.read_bytes() != other.last_frame_path.read_bytes()
    # libx264 itself is not bit-exact from one encode to the next, so the videos are compared
    # by what they show.
    videos = [decoded_frames(result.video_path).astype(np.int16) for result in results]
    assert np.abs(videos[0] - videos[1]).mean() < 0.5
    assert np.abs(videos[0] - videos[2]).mean() > 2.0


@needs_extra
@BOTH_PLACES
def test_cancel_between_steps_stops_and_leaves_the_engine_usable(
    engines: dict[str, Engine], picture: NDArray[np.uint8], tmp_path: Path
) -> None:
    engine = engines["ltx"]
    job = job_for(picture, tmp_path / "clip.mp4")
    progress: list[float] = []
    if isinstance(engine, IsolatedEngine):
        # The cancel crosses while the child goes on: asked from the start, it arrives long
        # before the first step ends.
        with pytest.raises(GenerationCanceled):
            engine.generate(job, progress.append, lambda: True)
        assert len(progress) <= 1
    else:
        with pytest.raises(GenerationCanceled):
            engine.generate(job, progress.append, lambda: bool(progress))
        assert len(progress) == 1  # stopped right after the first step
    assert not job.video_path.exists()
    assert not list(tmp_path.glob("*.partial"))

    result = engine.generate(job, lambda _: None, lambda: False)
    assert result.frames == 150


@needs_extra
def test_a_configured_seed_overrides_the_tasks(
    make_engine: MakeEngine, picture: NDArray[np.uint8], tmp_path: Path
) -> None:
    engine = make_engine("ltx", seed=3)
    stills = [
        engine.generate(
            job_for(picture, tmp_path / f"{seed}.mp4", seed=seed), lambda _: None, lambda: False
        ).last_frame_path.read_bytes()
        for seed in (1, 2)
    ]
    assert stills[0] == stills[1]


@needs_extra
def test_weights_folder_problems_are_named_clearly(
    tiny_weights: dict[str, Path], tmp_path: Path, place: str
) -> None:
    from kinema.engines.registry import load_engine

    def setup_error(config: DiffusersConfig) -> str:
        engine = isolated("diffusers", config) if place == IN_CHILD else load_engine("diffusers", config)
        with pytest.raises(EngineMisconfigured) as caught:
            engine.setup()
        close(engine)
        return caught.value.message

    base = tiny_config(tiny_weights, "wan")
    missing = tmp_path / "no-such-folder"
    message = setup_error(replace(base, weights_dir=missing))
    assert str(missing) in message
    assert "KINEMA_DIFFUSERS_WEIGHTS_DIR" in message
    assert "does not exist" in message

    assert "KINEMA_DIFFUSERS_WEIGHTS_DIR" in setup_error(replace(base, weights_dir=None))

    empty = tmp_path / "empty"
    empty.mkdir()
    message = setup_error(replace(base, weights_dir=empty))
    assert "model_index.json" in message
    assert str(empty) in message

    message = setup_error(replace(base, weights_dir=tiny_weights["ltx"]))
    assert "KINEMA_DIFFUSERS_MODEL" in message
    assert "LTXPipeline" in message
