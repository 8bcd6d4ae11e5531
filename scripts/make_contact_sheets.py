"""Before/after contact sheets of the motion engine, from the bundled sample image.

Two scenes: the sample itself (a landscape: depth from cues only), and the sample with two
knights painted into its foreground (a clear subject for the matte). Each is rendered twice at
512P, flat (``KINEMA_MOTION_DEPTH=off``, no effects: the engine as it was) and as a scene with
the prompt's effects, and three frames of each (first, middle, last) are laid side by side:
before above, after below. The sheets go to ``docs/images/``.

    .venv/bin/python scripts/make_contact_sheets.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.motion.engine import frame_renderer
from kinema.engines.motion.matte import U2NetMatter

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "kinema" / "assets" / "sample.jpg"
KNIGHTS_PROMPT = "[Truck left] two knights clash on the shore, sparks explode, dust in the air"
LAKE_PROMPT = "[Pedestal up] a mountain lake at sunset, clouds drifting, water shimmering"
THUMB_WIDTH = 360


def _knight(
    canvas: NDArray[np.uint8],
    foot_x: int,
    foot_y: int,
    scale: float,
    facing: int,
    tabard: tuple[int, int, int],
) -> None:
    """An armoured figure lit from the setting sun, in a coloured tabard, holding a sword forward."""
    height, width = canvas.shape[:2]
    armour = np.zeros((height, width), np.uint8)
    cloth = np.zeros((height, width), np.uint8)
    s = scale

    def pt(x: float, y: float) -> tuple[int, int]:
        return (round(foot_x + facing * x * s), round(foot_y - y * s))

    legs = [
        np.array([pt(-30, 0), pt(-8, 0), pt(-4, 155), pt(-34, 155)], np.int32),
        np.array([pt(8, 0), pt(34, 0), pt(34, 155), pt(4, 155)], np.int32),
    ]
    arm = np.array([pt(10, 290), pt(30, 300), pt(110, 230), pt(95, 215)], np.int32)
    for part in [*legs, arm]:
        cv2.fillConvexPoly(armour, part, 255, cv2.LINE_AA)
    cv2.ellipse(armour, pt(0, 330), (round(30 * s), round(38 * s)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.ellipse(armour, pt(0, 320), (round(52 * s), round(16 * s)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.fillConvexPoly(
        cloth, np.array([pt(-36, 140), pt(36, 140), pt(42, 302), pt(-42, 302)], np.int32), 255, cv2.LINE_AA
    )
    # Light from the right (the sun), falling off across the figure; a little seeded grain.
    xs = np.arange(width, dtype=np.float32)[None, :, None]
    light = np.clip(0.55 + (xs - foot_x) / (140 * s), 0.35, 1.25)
    grain = np.random.default_rng(foot_x).normal(1.0, 0.04, (height, width, 1)).astype(np.float32)
    for mask, colour in ((armour, (176, 158, 132)), (cloth, tabard)):
        paint = np.clip(np.array(colour, np.float32) * light * grain, 0, 255)
        weight = (mask.astype(np.float32) / 255.0)[..., None]
        canvas[:] = (canvas * (1 - weight) + paint * weight).astype(np.uint8)
    cv2.line(canvas, pt(100, 225), pt(260, 330), (225, 225, 235), max(2, round(6 * s)), cv2.LINE_AA)
    cv2.line(canvas, pt(88, 205), pt(118, 250), (120, 100, 60), max(2, round(8 * s)), cv2.LINE_AA)


def knights(sample: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The sample with two knights facing each other on the near shore."""
    picture = sample.copy()
    height, width = picture.shape[:2]
    scale = height / 1080 * 2.1
    _knight(picture, round(width * 0.33), round(height * 0.98), scale, 1, (170, 40, 36))
    _knight(picture, round(width * 0.67), round(height * 0.99), scale, -1, (40, 70, 160))
    return picture


def _frames(image: NDArray[np.uint8], prompt: str, depth: bool, work: Path) -> list[NDArray[np.uint8]]:
    job = GenerationJob(prompt=prompt, image=image, duration_s=6, resolution=Resolution.P512, video_path=work)
    if depth:
        renderer = frame_renderer(job, U2NetMatter())
    else:
        plain = prompt.split("]")[0] + "]"  # the camera command alone: no effects, as before
        renderer = frame_renderer(
            GenerationJob(
                prompt=plain, image=image, duration_s=6, resolution=Resolution.P512, video_path=work
            )
        )
    picks = (0, renderer.frames // 2, renderer.frames - 1)
    return [renderer.render_rgb(index) for index in picks]


def contact_sheet(image: NDArray[np.uint8], prompt: str) -> NDArray[np.uint8]:
    """Three frames before (flat) above three frames after (the scene), with a gap between."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder) / "clip.mp4"
        rows = []
        for depth in (False, True):
            frames = _frames(image, prompt, depth, work)
            height = round(frames[0].shape[0] * THUMB_WIDTH / frames[0].shape[1])
            thumbs = [cv2.resize(f, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA) for f in frames]
            gap = np.full((height, 4, 3), 255, np.uint8)
            rows.append(np.hstack([thumbs[0], gap, thumbs[1], gap, thumbs[2]]))
        spacer = np.full((6, rows[0].shape[1], 3), 255, np.uint8)
        return np.vstack([rows[0], spacer, rows[1]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sample = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    for name, image, prompt in (
        ("motion-knights.jpg", knights(sample), KNIGHTS_PROMPT),
        ("motion-lake.jpg", sample, LAKE_PROMPT),
    ):
        sheet = contact_sheet(image, prompt)
        bgr = cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(args.out / name), bgr, [cv2.IMWRITE_JPEG_QUALITY, 82])
        print(f"wrote {args.out / name}: {prompt}")


if __name__ == "__main__":
    main()
