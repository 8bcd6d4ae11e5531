"""The still as a scene: a subject layer in front of a filled background, and a depth for each.

No registry package ships monocular-depth weights, so depth comes from cues that hold for most
photographs, combined in disparity (inverse depth, 1.0 on the reference plane):

- **The matte** separates the subject, the reference plane at disparity 1.0. It is one rigid
  plane: a person or an object is shallow next to its distance from the camera, and a rigid
  layer cannot tear.
- **Sky**: smooth, bright regions joined to the top edge are far (`SKY_DISPARITY`).
- **A ground plane**: below the horizon, disparity grows linearly with the distance below it,
  which is exactly what a flat ground seen from a camera at any height gives. With a subject,
  the plane passes through the subject's base (the ground it stands on has its depth); without
  one, it reaches `NEAR_DISPARITY` at the bottom edge.
- **A backdrop**: whatever stands behind a subject above the ground (a wall, trees, hills) is
  one plane at `BACKDROP_DISPARITY`, pushed further back where it looks hazy (aerial
  perspective: low contrast and a colour close to the sky's).

The field is smoothed heavily, so the background bends instead of tearing. The background
behind the subject is filled (`fill_holes`): a colour fill by a pyramid, Telea's method at the
coarsest level, and the texture around the hole mirrored into it; the subject's own edge
colours are extended outwards from its interior, so no trace of the old background rides along
with it (no halo), and no trace of the subject stays behind (no doubled edge).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from numpy.typing import NDArray

from kinema.engines.motion.matte import Matte, MatteVerdict

Field = NDArray[np.float32]

SKY_DISPARITY = 0.12
BACKDROP_DISPARITY = 0.4
NEAR_DISPARITY = 1.0
SUBJECT_DISPARITY = 1.0
MAX_DISPARITY = 1.8
"""Ground nearer than the subject moves faster, up to this; bounded so a push never flips it."""

ANALYSIS_SIDE = 192
"""Short side of the thumbnail on which cues are read and the depth field is kept."""

HOLE_DILATION = 0.012
"""How far beyond the matte's faintest edge the background is refilled, as a share of the short
side: enough to take the subject's colour bleed and the matte's uncertainty with it."""


@dataclass(frozen=True, slots=True)
class SceneCues:
    """What the picture holds, as small fields over the whole picture (analysis resolution)."""

    disparity: Field  #: Of the background, everywhere (behind the subject too).
    sky: Field  #: 1.0 in the sky.
    water: Field  #: 1.0 on water (a smooth region below the horizon that mirrors the sky).
    warm_light: Field  #: Where fire or candle light is: bright, warm pixels, spread a little.
    vivid_light: Field  #: Where neon is: bright, saturated pixels, spread a little.
    horizon: float  #: As a fraction of the height.


@dataclass(frozen=True, slots=True)
class SubjectLayer:
    """The subject, cut out of the picture: a crop with its matte and decontaminated colours."""

    rgb: NDArray[np.uint8]  #: The crop's colours, edges extended from the interior.
    alpha: Field  #: The crop's matte, 0..1.
    origin: tuple[int, int]  #: The crop's top-left corner in the picture.
    disparity: float = SUBJECT_DISPARITY


@dataclass(frozen=True, slots=True)
class Scene:
    """A still as layers: a background with nothing cut out of it, and maybe a subject."""

    background: NDArray[np.uint8]  #: RGB at the picture's size, the subject filled in.
    subject: SubjectLayer | None
    cues: SceneCues


def _analysis_size(width: int, height: int) -> tuple[int, int]:
    scale = ANALYSIS_SIDE / min(width, height)
    return max(8, round(width * scale)), max(8, round(height * scale))


def _smoothstep(x: NDArray[np.float32], low: float, high: float) -> Field:
    t = np.clip((x - low) / (high - low), 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), np.float32)


def read_cues(image: NDArray[np.uint8], subject: Field | None) -> SceneCues:
    """Depth and regions from cues; `subject` is the matte at the analysis size, if any."""
    height, width = image.shape[:2]
    aw, ah = _analysis_size(width, height)
    small = cv2.resize(image, (aw, ah), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    blurred = cv2.GaussianBlur(small, (0, 0), 1.2)
    luma = blurred @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3)
    texture = np.asarray(cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), 2.0), np.float32)
    rows = (np.arange(ah, dtype=np.float32)[:, None] + 0.5) / ah * np.ones((1, aw), np.float32)
    not_subject = np.ones((ah, aw), np.float32) if subject is None else 1.0 - subject

    # Sky: smooth and not dark, in the upper part, joined to the top edge.
    smooth = texture < 0.1
    candidate = (smooth & (luma > 0.12) & (rows < 0.75) & (not_subject > 0.5)).astype(np.uint8)
    count, labels = cv2.connectedComponents(candidate, connectivity=4)
    top_labels = np.unique(labels[0][candidate[0] > 0])
    sky_mask = np.isin(labels, top_labels[top_labels > 0]) if count > 1 else np.zeros((ah, aw), bool)
    # Clouds and birds leave holes in the sky: close them.
    closed = cv2.morphologyEx(sky_mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    sky_mask = (closed > 0) & (not_subject > 0.5)
    if sky_mask.mean() < 0.03:
        sky_mask[:] = False
    sky = cv2.GaussianBlur(sky_mask.astype(np.float32), (0, 0), 2.0)

    # The horizon: where the sky ends, column by column; else from the subject; else 40% down.
    if sky_mask.any():
        lowest = np.where(sky_mask.any(axis=0), ah - 1 - np.argmax(sky_mask[::-1], axis=0), -1)
        horizon = float(np.median(lowest[lowest >= 0]) + 1) / ah
    else:
        horizon = 0.4
    base = 1.0
    if subject is not None and (subject > 0.5).any():
        ys = np.nonzero((subject > 0.5).any(axis=1))[0]
        top, base = ys[0] / ah, (ys[-1] + 1) / ah
        if not sky_mask.any():
            horizon = top + 0.3 * (base - top)
        horizon = min(horizon, base - 0.15)
    horizon = float(np.clip(horizon, 0.05, 0.9))

    # The ground plane: disparity linear in the distance below the horizon.
    if subject is not None:
        ground = SUBJECT_DISPARITY * (rows - horizon) / max(base - horizon, 0.05)
    else:
        ground = SKY_DISPARITY + (NEAR_DISPARITY - SKY_DISPARITY) * (rows - horizon) / (1.0 - horizon)
    ground = np.clip(ground, 0.0, MAX_DISPARITY)

    # Haze: far things lose contrast and take the sky's colour.
    if sky_mask.any():
        sky_colour = blurred[sky_mask].mean(axis=0)
        likeness = 1.0 - np.clip(np.linalg.norm(blurred - sky_colour, axis=2) / 0.35, 0.0, 1.0)
    else:
        likeness = np.zeros((ah, aw), np.float32)
    haze = likeness * (1.0 - _smoothstep(texture, 0.02, 0.12))
    backdrop = (BACKDROP_DISPARITY if subject is not None else SKY_DISPARITY) * (1.0 - 0.5 * haze)
    land = np.maximum(backdrop, ground)
    disparity = sky * SKY_DISPARITY + (1.0 - sky) * land
    sigma = 0.06 * min(aw, ah)
    disparity = cv2.GaussianBlur(disparity.astype(np.float32), (0, 0), sigma)

    # Water: a smooth region below the horizon that mirrors the sky's colour, or is blue.
    r, g, b = blurred[..., 0], blurred[..., 1], blurred[..., 2]
    blue = (b > r + 0.04) & (b > g)
    water_like = (rows > horizon) & (texture < 0.08) & ((likeness > 0.45) | blue) & (not_subject > 0.5)
    water_mask = cv2.morphologyEx(water_like.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    water = cv2.GaussianBlur(water_mask.astype(np.float32), (0, 0), 1.5)

    # Light sources: warm and bright (fire, candles), or saturated and bright (neon).
    value = blurred.max(axis=2)
    saturation = (value - blurred.min(axis=2)) / np.maximum(value, 1e-3)
    warm = _smoothstep(r - b, 0.15, 0.4) * _smoothstep(value, 0.55, 0.9)
    vivid = _smoothstep(saturation, 0.45, 0.8) * _smoothstep(value, 0.6, 0.95)
    spread = 0.08 * min(aw, ah)
    warm_light = _spread_light(warm, spread)
    vivid_light = _spread_light(vivid, spread)
    return SceneCues(
        disparity.astype(np.float32),
        sky.astype(np.float32),
        water.astype(np.float32),
        warm_light,
        vivid_light,
        horizon,
    )


def _spread_light(source: Field, sigma: float) -> Field:
    """A light's reach: the source and its glow around it, 0..1."""
    glow = cv2.GaussianBlur(source.astype(np.float32), (0, 0), sigma)
    peak = float(glow.max())
    if peak < 1e-3:
        return np.zeros_like(source, dtype=np.float32)
    return np.asarray(np.clip(np.maximum(source, glow / peak), 0.0, 1.0), np.float32)


def fill_holes(image: NDArray[np.uint8], hole: NDArray[np.bool_], texture: bool = True) -> NDArray[np.uint8]:
    """`image` with the `hole` pixels made up from the rest, without seams.

    Colours: a pyramid of the known pixels (each level the weighted average of the finer one),
    down to where the hole is a few pixels across; Telea's inpainting closes what is left
    there, and each finer level keeps its own known pixels and takes the coarser level's fill
    inside the hole. Near the hole's edge, where a moving camera uncovers the fill first, the
    surroundings are mirrored in (`_mirrored_surroundings`), so the fill is not a smear.
    """
    if not hole.any():
        return image.copy()
    known = (~hole).astype(np.float32)
    if known.sum() < 16:
        mean = np.full_like(image, 128)
        return np.where(hole[..., None], mean, image).astype(np.uint8)
    levels: list[tuple[Field, Field]] = []
    colour: Field = image.astype(np.float32) * known[..., None]
    weight: Field = known
    while True:
        levels.append((colour, weight))
        height, width = weight.shape
        if min(height, width) <= 24 or _widest_gap(weight < 1e-3) <= 3:
            break
        colour = np.asarray(cv2.pyrDown(colour), np.float32)
        weight = np.asarray(cv2.pyrDown(weight), np.float32)
    colour, weight = levels[-1]
    coarse: Field = np.asarray(colour / np.maximum(weight, 1e-6)[..., None], np.float32)
    gaps = (weight < 1e-3).astype(np.uint8)
    if gaps.any():
        coarse8 = np.clip(coarse, 0, 255).astype(np.uint8)
        coarse = np.asarray(cv2.inpaint(coarse8, gaps, 3, cv2.INPAINT_TELEA), np.float32)
    for colour, weight in reversed(levels[1:-1]):
        height, width = weight.shape
        up = np.asarray(cv2.pyrUp(coarse, dstsize=(width, height)), np.float32)
        certain = np.clip(weight, 0.0, 1.0)[..., None]
        coarse = np.asarray(
            colour / np.maximum(weight, 1e-6)[..., None] * certain + up * (1.0 - certain), np.float32
        )
    if len(levels) > 1:
        # At full size only the hole's pixels are read, where nothing is known: each is the
        # coarser level's fill, with no blending of the known pixels to do.
        height, width = hole.shape
        coarse = np.asarray(cv2.pyrUp(coarse, dstsize=(width, height)), np.float32)
    filled = _mirrored_surroundings(image, hole, coarse) if texture else coarse[hole]
    out = image.copy()
    out[hole] = np.clip(filled, 0, 255).astype(np.uint8)
    return out


def _widest_gap(gaps: NDArray[np.bool_]) -> float:
    if not gaps.any():
        return 0.0
    distance = cv2.distanceTransform(gaps.astype(np.uint8), cv2.DIST_L2, 3)
    return float(distance.max())


MIRROR_REACH = 0.1
"""Share of the short side over which the mirrored surroundings fade into the smooth fill."""


def _mirrored_surroundings(
    image: NDArray[np.uint8], hole: NDArray[np.bool_], smooth: NDArray[np.float32]
) -> NDArray[np.float32]:
    """The hole's pixels (in the order of `np.nonzero(hole)`), each as the mirror image of the
    known picture across the hole's nearest edge.

    Next to the edge this continues the surroundings exactly (a horizon meeting the edge of a
    standing subject carries on at the same height); further in, it fades into `smooth`, so
    the mirrored halves never meet in a visible seam.
    """
    height, width = hole.shape
    ys, xs = np.nonzero(hole)
    # A hole pixel's nearest known pixel lies within one pixel of the hole's bounding box:
    # distances are taken there only.
    top, left = max(0, int(ys.min()) - 1), max(0, int(xs.min()) - 1)
    bottom, right = min(height, int(ys.max()) + 2), min(width, int(xs.max()) + 2)
    inside = hole[top:bottom, left:right].astype(np.uint8)
    distance, labels = cv2.distanceTransformWithLabels(inside, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    known_y, known_x = np.nonzero(inside == 0)  # labels number the known pixels in this order
    nearest = labels[ys - top, xs - left] - 1
    by, bx = known_y[nearest] + top, known_x[nearest] + left
    my = np.clip(2 * by - ys, 0, height - 1)
    mx = np.clip(2 * bx - xs, 0, width - 1)
    in_hole = hole[my, mx]
    my = np.where(in_hole, by, my)
    mx = np.where(in_hole, bx, mx)
    reach = max(4.0, MIRROR_REACH * min(height, width))
    weight = np.clip(1.0 - distance[ys - top, xs - left] / reach, 0.0, 1.0)
    weight = (weight * weight * (3.0 - 2.0 * weight))[:, None]
    return np.asarray(image[my, mx].astype(np.float32) * weight + smooth[ys, xs] * (1.0 - weight), np.float32)


def _subject_layer(image: NDArray[np.uint8], alpha: Field) -> SubjectLayer:
    height, width = alpha.shape
    ys, xs = np.nonzero(alpha > 0.004)
    pad = 4
    # Even corners, so the crop's chroma lines up with the frame's 4:2:0 grid.
    x0, y0 = max(0, int(xs.min()) - pad) // 2 * 2, max(0, int(ys.min()) - pad) // 2 * 2
    x1, y1 = min(width, int(xs.max()) + pad + 1), min(height, int(ys.max()) + pad + 1)
    x1, y1 = x0 + (x1 - x0) // 2 * 2, y0 + (y1 - y0) // 2 * 2
    crop = image[y0:y1, x0:x1]
    crop_alpha = alpha[y0:y1, x0:x1]
    interior = crop_alpha > 0.97
    if interior.sum() < 16:
        interior = crop_alpha > 0.5
    colours = fill_holes(crop, ~interior, texture=False)
    return SubjectLayer(np.ascontiguousarray(colours), np.ascontiguousarray(crop_alpha), (x0, y0))


def subject_alpha(matte: Matte | None) -> Field | None:
    """The matte of a clear subject, or None when the matte found none (or is unsure)."""
    if matte is None or matte.verdict is not MatteVerdict.SUBJECT:
        return None
    return matte.alpha


def scene_cues(image: NDArray[np.uint8], alpha: Field | None) -> SceneCues:
    """`read_cues` with the subject's matte (at `image`'s size) brought to the analysis size."""
    height, width = image.shape[:2]
    small = None
    if alpha is not None:
        small = np.asarray(
            cv2.resize(alpha, _analysis_size(width, height), interpolation=cv2.INTER_AREA), np.float32
        )
    return read_cues(image, small)


def flat(cues: SceneCues) -> SceneCues:
    """The same cues with the whole picture at one depth: the flat camera, effects still placed."""
    return replace(cues, disparity=np.ones((2, 2), np.float32))


def build_scene(image: NDArray[np.uint8], alpha: Field | None, cues: SceneCues) -> Scene:
    """Layers for `image`: the subject cut out along `alpha` (at `image`'s size), the hole
    it leaves filled; without a subject, the picture is one background."""
    if alpha is None:
        return Scene(image, None, cues)
    height, width = image.shape[:2]
    reach = max(2, round(HOLE_DILATION * min(width, height)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    hole = cv2.dilate((alpha > 0.004).astype(np.uint8), kernel).astype(bool)
    background = fill_holes(image, hole)
    return Scene(background, _subject_layer(image, alpha), cues)
