"""Paint the bundled sample image: a mountain lake at sunset, made from seeded noise.

The picture ships with the package (``kinema/assets/sample.jpg``) so that a new install can
render a video without downloading anything. Run this script to paint it again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]


def fractal_noise(rng: np.random.Generator, height: int, width: int, octaves: int) -> Array:
    """Sum of upscaled random grids: smooth at large scales, detailed at small ones."""
    total = np.zeros((height, width), np.float32)
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.random((cells, max(2, cells * width // height)), dtype=np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
        amplitude *= 0.5
    return total / weight


def ridge(rng: np.random.Generator, width: int, base: float, roughness: float) -> Array:
    """A mountain skyline: heights in pixels from the top, one per column."""
    line = np.zeros(width, np.float32)
    amplitude = roughness
    for octave in range(7):
        points = 2 ** (octave + 2) + 1
        knots = rng.normal(0.0, 1.0, points).astype(np.float32)
        line += amplitude * np.interp(np.linspace(0, points - 1, width), np.arange(points), knots)
        amplitude *= 0.5
    return (base + line).astype(np.float32)


def mix(a: Array, b: Array, t: Array) -> Array:
    return a * (1.0 - t[..., None]) + b * t[..., None]


def paint(width: int, height: int, seed: int) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None] * np.ones((1, width), np.float32)
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :] * np.ones((height, 1), np.float32)
    horizon = 0.62

    # Sky: deep blue overhead to amber at the horizon, with soft clouds.
    zenith = np.array([0.10, 0.16, 0.38], np.float32)
    glow = np.array([1.00, 0.62, 0.30], np.float32)
    t = np.clip(ys / horizon, 0.0, 1.0) ** 1.6
    image = mix(np.broadcast_to(zenith, (height, width, 3)), np.broadcast_to(glow, (height, width, 3)), t)
    sun_x, sun_y = 0.68, 0.50
    distance = np.hypot((xs - sun_x) * width / height, ys - sun_y)
    image += (np.exp(-distance * 9.0) * 0.55)[..., None] * np.array([1.0, 0.75, 0.45], np.float32)
    image = np.where((distance < 0.035)[..., None], np.array([1.0, 0.93, 0.75], np.float32), image)
    clouds = np.clip((fractal_noise(rng, height, width, 6) - 0.52) * 3.0, 0.0, 1.0)
    clouds *= np.clip(1.0 - ys / horizon, 0.0, 1.0) ** 0.5
    cloud_colour = np.array([0.98, 0.70, 0.62], np.float32)
    image = mix(image, np.broadcast_to(cloud_colour, image.shape), clouds * 0.7)

    # Mountain ranges, far to near: lower, darker and more textured as they come closer.
    ranges = [
        (0.47, 0.05, (0.48, 0.42, 0.58)),
        (0.52, 0.06, (0.33, 0.28, 0.44)),
        (0.57, 0.05, (0.20, 0.18, 0.28)),
    ]
    for index, (base, roughness, colour) in enumerate(ranges):
        skyline = ridge(rng, width, base * height, roughness * height)
        inside = ys * height > skyline[None, :]
        texture = fractal_noise(rng, height, width, 7 + index)
        shade = np.array(colour, np.float32) * (0.75 + 0.5 * texture)[..., None]
        image = np.where(inside[..., None] & (ys < horizon)[..., None], shade, image)

    # The lake mirrors what is above the horizon, broken up by ripples.
    lake = ys >= horizon
    ripple = fractal_noise(rng, height, width, 8)
    mirror_row = np.clip(2 * horizon - ys + (ripple - 0.5) * 0.02, 0.0, horizon - 1e-3)
    rows = (mirror_row * (height - 1)).astype(np.int64)
    cols = np.clip((xs * (width - 1) + (ripple - 0.5) * 12).astype(np.int64), 0, width - 1)
    reflection = image[rows, cols] * np.array([0.62, 0.66, 0.78], np.float32)
    image = np.where(lake[..., None], reflection, image)

    # A pine-covered shore in the foreground.
    shore = ridge(rng, width, 0.80 * height, 0.012 * height)
    for _ in range(90):
        x = rng.uniform(0, width)
        top = rng.uniform(0.60, 0.74) * height
        half = rng.uniform(0.012, 0.03) * width
        base_y = shore[int(np.clip(x, 0, width - 1))]
        inside = (ys * height > top) & (ys * height < base_y)
        inside &= np.abs(xs * width - x) < half * (ys * height - top) / max(base_y - top, 1.0)
        image = np.where(inside[..., None], np.array([0.05, 0.09, 0.07], np.float32), image)
    ground = ys * height > shore[None, :]
    grass = fractal_noise(rng, height, width, 8)
    ground_colour = np.array([0.10, 0.12, 0.07], np.float32) * (0.6 + 0.8 * grass)[..., None]
    image = np.where(ground[..., None], ground_colour, image)

    grain = rng.normal(0.0, 0.012, image.shape).astype(np.float32)
    return (np.clip(image + grain, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).resolve().parents[1] / "src" / "kinema" / "assets" / "sample.jpg"
    parser.add_argument("-o", "--output", type=Path, default=default)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rgb = paint(1920, 1080, args.seed)
    cv2.imwrite(str(args.output), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
