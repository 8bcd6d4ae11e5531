"""What the prompt names moves: particles in the air, flickering light, slow flow.

`effects_in` reads the effect words of a prompt (English words, Chinese terms); only those
effects are drawn, so a prompt that names none gives exactly the camera's frames. Every random
choice comes from the task's seed: the same prompt and seed give the same video.

- **Particles** (snow, rain, dust, sparks, embers, fireflies, petals, ash, bubbles) live in the
  world at three depths, so a travelling camera moves the near ones most. Each frame they are
  splatted at their positions over the shutter time (motion blur: rain draws streaks), blurred
  to their size (near ones larger), and the glowing kinds get a halo of their light.
- **Light** (fire, candle, lightning, neon) changes brightness over time: band-limited noise
  for flames, a slow pulse and a buzz for neon, one or two double flashes for lightning. Flames
  and neon weigh their change by where the picture holds such light (`scene.SceneCues`).
- **Flow** (clouds, water, fog, smoke): clouds drift within the sky region and water shimmers
  within the water region, both as displacements of the background; fog rolls and smoke rises
  as a translucent layer of seeded noise, thicker far away.

All overlays reduce to one form per frame, computed at chroma resolution: a luma gain, and a
coverage with a colour for each plane (``plane * (1 - c) + colour * c``), so drawing costs the
same whatever the number of effects.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import cv2
import numpy as np
from numpy.typing import NDArray

from kinema.domain.video import FrameSize
from kinema.engines.motion.camera import CameraPath, layer_matrices
from kinema.engines.motion.scene import SceneCues

Field = NDArray[np.float32]


class Effect(StrEnum):
    """Something in the scene that moves by itself when the prompt names it."""

    SNOW = "snow"  #: Flakes falling and swaying.
    RAIN = "rain"  #: Fast slanted streaks.
    DUST = "dust"  #: Motes drifting in the light.
    SPARKS = "sparks"  #: Bright streaks thrown up and falling back.
    EMBERS = "embers"  #: Glowing specks rising and fading.
    FIREFLIES = "fireflies"  #: Points of light wandering and pulsing.
    PETALS = "petals"  #: Pink petals fluttering down.
    ASH = "ash"  #: Grey flakes drifting down.
    BUBBLES = "bubbles"  #: Rings rising and wobbling.
    FIRE = "fire"  #: Flame light flickering.
    CANDLE = "candle"  #: Candle light flickering, gentler.
    LIGHTNING = "lightning"  #: One or two flashes.
    NEON = "neon"  #: Neon light pulsing and buzzing.
    CLOUDS = "clouds"  #: The sky drifting sideways.
    WATER = "water"  #: Water shimmering.
    FOG = "fog"  #: Fog rolling across.
    SMOKE = "smoke"  #: Smoke rising.


EFFECT_WORDS: Mapping[Effect, tuple[str, ...]] = MappingProxyType(
    {
        Effect.SNOW: ("snow", "snows", "snowing", "snowfall", "snowflake", "snowflakes", "blizzard"),
        Effect.RAIN: ("rain", "rains", "raining", "rainfall", "raindrops", "drizzle", "downpour"),
        Effect.DUST: ("dust", "dusty", "motes"),
        Effect.SPARKS: ("spark", "sparks", "sparking"),
        Effect.EMBERS: ("ember", "embers"),
        Effect.FIREFLIES: ("firefly", "fireflies"),
        Effect.PETALS: ("petal", "petals", "blossoms"),
        Effect.ASH: ("ash", "ashes", "ashfall"),
        Effect.BUBBLES: ("bubble", "bubbles"),
        Effect.FIRE: ("fire", "fires", "flame", "flames", "campfire", "bonfire", "fireplace", "blaze"),
        Effect.CANDLE: ("candle", "candles", "candlelight", "candlelit"),
        Effect.LIGHTNING: ("lightning", "thunderstorm"),
        Effect.NEON: ("neon",),
        Effect.CLOUDS: ("cloud", "clouds", "cloudy"),
        Effect.WATER: ("water", "waves", "ripples", "rippling", "shimmer", "shimmering"),
        Effect.FOG: ("fog", "foggy", "mist", "misty"),
        Effect.SMOKE: ("smoke", "smoky", "smoking", "steam"),
    }
)
"""English words that name each effect, matched as whole words, in any case."""

CHINESE_EFFECT_WORDS: Mapping[Effect, tuple[str, ...]] = MappingProxyType(
    {
        Effect.SNOW: ("下雪", "雪花", "飘雪", "大雪", "暴风雪"),
        Effect.RAIN: ("下雨", "雨滴", "雨水", "细雨", "大雨", "小雨", "暴雨"),
        Effect.DUST: ("灰尘", "尘土", "尘埃", "扬尘"),
        Effect.SPARKS: ("火花", "火星"),
        Effect.EMBERS: ("余烬", "炭火"),
        Effect.FIREFLIES: ("萤火虫",),
        Effect.PETALS: ("花瓣", "落花"),
        Effect.ASH: ("灰烬", "火山灰"),
        Effect.BUBBLES: ("泡泡", "气泡"),
        Effect.FIRE: ("火焰", "火光", "篝火", "燃烧", "炉火"),
        Effect.CANDLE: ("蜡烛", "烛光"),
        Effect.LIGHTNING: ("闪电", "雷电"),
        Effect.NEON: ("霓虹",),
        Effect.CLOUDS: ("云朵", "云彩", "白云", "乌云", "云层", "流云"),
        Effect.WATER: ("水面", "波光", "波纹", "涟漪", "水波"),
        Effect.FOG: ("雾",),
        Effect.SMOKE: ("烟雾", "炊烟", "浓烟", "青烟", "蒸汽"),
    }
)
"""Chinese terms that name each effect, found anywhere in the prompt."""

_WORD = re.compile(r"[A-Za-z]+")
_BY_WORD = {word: effect for effect, words in EFFECT_WORDS.items() for word in words}

PARTICLES = frozenset(
    {
        Effect.SNOW,
        Effect.RAIN,
        Effect.DUST,
        Effect.SPARKS,
        Effect.EMBERS,
        Effect.FIREFLIES,
        Effect.PETALS,
        Effect.ASH,
        Effect.BUBBLES,
    }
)
LIGHTS = frozenset({Effect.FIRE, Effect.CANDLE, Effect.LIGHTNING, Effect.NEON})
DISPLACEMENTS = frozenset({Effect.CLOUDS, Effect.WATER})


def effects_in(prompt: str) -> frozenset[Effect]:
    """The effects a prompt names."""
    text = unicodedata.normalize("NFKC", prompt)
    found = {_BY_WORD[word] for word in (m.group().lower() for m in _WORD.finditer(text)) if word in _BY_WORD}
    found |= {effect for effect, terms in CHINESE_EFFECT_WORDS.items() if any(t in text for t in terms)}
    return frozenset(found)


# --- Particles -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one kind of particle looks and moves; lengths are fractions of the frame height."""

    count: int  #: At 768P; scaled with the frame's area.
    sigma: float  #: Radius of a particle at disparity 1.
    velocity: tuple[float, float]  #: Per second, at disparity 1 (y down).
    spread: float  #: Random share added to each particle's velocity.
    sway: float  #: Amplitude of a sideways sway.
    colour: tuple[int, int, int]  #: RGB.
    opacity: float
    glow: float = 0.0  #: Strength of the halo of light around each particle.
    shutter: float = 0.5  #: Fraction of a frame the shutter is open (streak length).
    life: float = 0.0  #: Seconds a particle lives before it is born again; 0 = forever.
    gravity: float = 0.0  #: Downward acceleration per second squared.
    twinkle: float = 0.0  #: Depth of the brightness pulse.
    ring: bool = False  #: Drawn as a ring (a bubble).
    burst: float = 0.0  #: Born within this distance of the point of interest; 0 = anywhere.


_KINDS: Mapping[Effect, _Kind] = MappingProxyType(
    {
        Effect.SNOW: _Kind(700, 0.0017, (0.0, 0.09), 0.3, 0.012, (245, 246, 250), 0.85, shutter=0.4),
        Effect.RAIN: _Kind(900, 0.0007, (0.25, 1.6), 0.1, 0.0, (205, 210, 220), 0.35, shutter=0.7),
        Effect.DUST: _Kind(500, 0.0011, (0.01, -0.004), 1.5, 0.006, (240, 222, 185), 0.6, 0.5, twinkle=0.6),
        Effect.SPARKS: _Kind(
            420, 0.0016, (0.0, -0.5), 0.9, 0.0, (255, 206, 120), 1.0, 1.4, 0.9, 1.2, 0.8, 0.3, burst=0.07
        ),
        Effect.EMBERS: _Kind(
            200, 0.0011, (0.01, -0.07), 0.8, 0.01, (255, 128, 48), 0.95, 0.7, 0.5, 3.0, twinkle=0.5
        ),
        Effect.FIREFLIES: _Kind(90, 0.0014, (0.0, 0.0), 0.04, 0.02, (214, 255, 120), 1.0, 0.9, twinkle=0.9),
        Effect.PETALS: _Kind(160, 0.0026, (0.02, 0.06), 0.5, 0.03, (250, 182, 205), 0.9, twinkle=0.35),
        Effect.ASH: _Kind(350, 0.0012, (0.005, 0.035), 0.6, 0.012, (150, 150, 152), 0.7),
        Effect.BUBBLES: _Kind(90, 0.0045, (0.0, -0.08), 0.4, 0.012, (235, 245, 255), 0.55, 0.2, ring=True),
    }
)

PARTICLE_DEPTHS = (0.45, 0.9, 1.5)
"""Disparities of the three depth classes, far to near; each holds a third of the particles."""


def _band_noise(rng: np.random.Generator, samples: int, fps: int, band: tuple[float, float]) -> Field:
    """Unit-RMS noise with its spectrum inside `band` (Hz)."""
    length = max(samples, 4 * fps)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, d=1.0 / fps)
    spectrum[(freqs < band[0]) | (freqs > band[1])] = 0.0
    noise = np.fft.irfft(spectrum, n=length)[:samples]
    rms = float(np.sqrt(np.mean(noise**2))) or 1.0
    return np.asarray(noise / rms, dtype=np.float32)


_RGB_TO_YCBCR = np.array(
    [[0.1826, 0.6142, 0.0620], [-0.1006, -0.3386, 0.4392], [0.4392, -0.3989, -0.0403]], np.float64
)


def _ycbcr(rgb: tuple[int, int, int]) -> NDArray[np.float32]:
    """BT.709 limited-range Y'CbCr of an 8-bit RGB colour."""
    return np.asarray(_RGB_TO_YCBCR @ np.array(rgb, np.float64) + [16.0, 128.0, 128.0], np.float32)


class _ParticleSystem:
    """One kind of particle over the whole clip: positions in the world, drawn per frame."""

    def __init__(self, effect: Effect, path: CameraPath, fps: int, seed: int) -> None:
        kind = _KINDS[effect]
        self.kind = kind
        size = path.size
        self._fps = fps
        self._height = size.height
        rng = np.random.default_rng([seed, 7919, list(Effect).index(effect)])
        count = max(12, round(kind.count * size.width * size.height / (1366 * 768)))
        self._depth_class = np.arange(count) % len(PARTICLE_DEPTHS)
        self._disparity = np.array(PARTICLE_DEPTHS)[self._depth_class]
        # The world each depth class may show over the clip, with room for the largest blur.
        self._bounds = []
        corners = np.array(
            [[0.0, size.width, 0.0, size.width], [0.0, 0.0, size.height, size.height], [1, 1, 1, 1]]
        )
        self._matrices = []
        for disparity in PARTICLE_DEPTHS:
            matrices = layer_matrices(path, np.full(len(path), disparity))
            mapped = matrices @ corners
            xy = mapped[:, :2] / mapped[:, 2:3]
            pad = 0.05 * size.height
            self._bounds.append(
                (xy[:, 0].min() - pad, xy[:, 1].min() - pad, xy[:, 0].max() + pad, xy[:, 1].max() + pad)
            )
            self._matrices.append(np.linalg.inv(matrices))
        low = np.array([self._bounds[c][:2] for c in self._depth_class])
        high = np.array([self._bounds[c][2:] for c in self._depth_class])
        self._low, self._span = low, high - low
        self._start = low + rng.random((count, 2)) * self._span
        h = float(size.height)
        base = np.array(kind.velocity) * h
        jitter = rng.standard_normal((count, 2)) * kind.spread * max(np.abs(base).max(), 0.02 * h)
        self._velocity = (base + jitter) * self._disparity[:, None] ** 0.5
        self._sway_phase = rng.random(count) * 2 * math.pi
        self._sway_rate = 2 * math.pi * (0.2 + 0.4 * rng.random(count))
        self._twinkle_phase = rng.random(count) * 2 * math.pi
        self._twinkle_rate = 2 * math.pi * (0.6 + 1.2 * rng.random(count))
        self._life_phase = rng.random(count)
        # Each rebirth of a short-lived particle starts somewhere new: a table per generation.
        generations = 2 + math.ceil(len(path) / fps / max(kind.life, 0.1))
        self._births = rng.random((generations, count, 2))
        self._birth_velocity = rng.standard_normal((generations, count, 2))
        self._weight = rng.uniform(0.6, 1.0, count)
        self._focus = np.array(path.focus_px)

    def positions(self, times: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """World positions (samples x count x 2) and brightness (samples x count) at `times` (s)."""
        kind = self.kind
        h = float(self._height)
        t = np.asarray(times, np.float64)[:, None]
        brightness = np.repeat(self._weight[None], len(t), axis=0)
        if kind.life > 0:
            cycles = t / kind.life + self._life_phase
            age_share = cycles % 1.0
            generation = np.floor(cycles).astype(int)
            index = np.arange(len(self._weight))
            if kind.burst:
                spot = self._births[generation, index] - 0.5
                birth = self._focus + spot * (2 * kind.burst * h) * np.array([1.6, 1.0])
            else:
                birth = self._low + self._births[generation, index] * self._span
            spread = self._birth_velocity[generation, index] * kind.spread * np.abs(kind.velocity).max() * h
            velocity = np.array(kind.velocity) * h + spread
            velocity *= self._disparity[:, None] ** 0.5
            age = age_share * kind.life
            where = birth + velocity * age[..., None]
            where[..., 1] += 0.5 * kind.gravity * h * age**2
            # Fade in quickly, out slowly.
            brightness *= np.minimum(1.0, age_share * 8.0) * (1.0 - age_share) ** 0.7
        else:
            where = self._start + self._velocity * t[..., None]
            where = self._low + np.mod(where - self._low, self._span)
        if kind.sway:
            where[..., 0] += kind.sway * h * np.sin(self._sway_rate * t + self._sway_phase)
        if kind.twinkle:
            pulse = np.sin(self._twinkle_rate * t + self._twinkle_phase)
            brightness *= 1.0 - kind.twinkle * 0.5 * (1.0 + pulse)
        return where, brightness

    def coverage(self, index: int, size: tuple[int, int]) -> Field:
        """Coverage at chroma resolution `size` (w, h) for frame `index`: particles over their glow.

        The positions of every shutter sample come from one call; the particles of every depth
        and their glow are one splat, each depth then blurred to its own radius and the glow at
        a quarter of the size.
        """
        kind = self.kind
        width, height = size
        time = index / self._fps
        px_per_frame = (
            float(np.abs(self._velocity).max()) / self._fps * 0.5
            if kind.life == 0
            else (np.abs(kind.velocity).max() * self._height / self._fps * 0.5)
        )
        samples = int(np.clip(math.ceil(px_per_frame * kind.shutter / 1.0), 1, 12))
        moments = time - kind.shutter / self._fps * np.arange(samples) / max(samples - 1, 1)
        world, brightness = self.positions(moments)
        classes = len(PARTICLE_DEPTHS)
        sigmas = [max(0.5, kind.sigma * self._height * disparity * 0.5) for disparity in PARTICLE_DEPTHS]
        xs, ys, weights = [], [], []
        for depth_class, sigma in enumerate(sigmas):
            members = slice(depth_class, None, classes)  # the classes take turns (see __init__)
            matrix = self._matrices[depth_class][index]
            screen = matrix[:, :2] @ world[:, members].reshape(-1, 2).T + matrix[:, 2:3]
            xs.append(screen[0] / screen[2] * 0.5 - 0.25)  # luma px to chroma px
            ys.append(screen[1] / screen[2] * 0.5 - 0.25)
            scale = kind.opacity * 2 * math.pi * sigma**2 / samples
            weights.append(brightness[:, members].reshape(-1) * scale)
        planes = [np.full(len(x), depth_class) for depth_class, x in enumerate(xs)]
        if kind.glow:
            # One halo for every depth, in a plane of its own; the factor keeps the peak as
            # wide halos spread.
            halo = [w * (sigma * 5.0) ** 2 for w, sigma in zip(weights, sigmas, strict=True)]
            xs.append(np.concatenate(xs))
            ys.append(np.concatenate(ys))
            weights.append(np.concatenate(halo))
            planes.append(np.full(len(xs[-1]), classes))
        splats = _splat(
            (len(planes), height, width),
            np.concatenate(xs),
            np.concatenate(ys),
            np.concatenate(weights),
            np.concatenate(planes),
        )
        body = np.zeros((height, width), np.float32)
        for splat, sigma in zip(splats[:classes], sigmas, strict=True):
            blurred = cv2.GaussianBlur(splat, (0, 0), sigma)
            if kind.ring:
                inner = cv2.GaussianBlur(splat, (0, 0), sigma * 0.7)
                blurred = np.maximum(blurred - inner * 0.5, 0.0) * 1.6
            body += blurred
        np.minimum(body, 1.0, out=body)
        if not kind.glow:
            return body
        # The halo is blurred at a quarter of the size: it is soft anyway.
        halo = splats[classes]
        small_w, small_h = max(1, width // 4), max(1, height // 4)
        small = cv2.resize(halo, (small_w, small_h), interpolation=cv2.INTER_AREA) * 16.0
        middle = max(0.5, kind.sigma * self._height * PARTICLE_DEPTHS[1] * 0.5)
        spread = max(0.7, middle * 5.0 / 4)
        small = cv2.GaussianBlur(small, (0, 0), spread) * (kind.glow * 0.5) / (middle * 5.0) ** 2
        glow = np.asarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), np.float32)
        np.minimum(glow, 1.0, out=glow)
        # The particle over its own halo, in the same colour.
        overlap = body * glow
        body += glow
        body -= overlap
        return body


def _splat(
    shape: tuple[int, int, int],
    xs: NDArray[np.float64],
    ys: NDArray[np.float64],
    weights: NDArray[np.float64],
    planes: NDArray[np.int64],
) -> Field:
    """Images (`shape`: planes, height, width) of points, each weight spread over the four
    nearest pixels (bilinearly) of its plane."""
    count, height, width = shape
    inside = (xs > -1) & (xs < width) & (ys > -1) & (ys < height)
    xs, ys, weights, planes = xs[inside], ys[inside], weights[inside], planes[inside]
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = xs - x0, ys - y0
    cx = np.concatenate([x0, x0 + 1, x0, x0 + 1])
    cy = np.concatenate([y0, y0, y0 + 1, y0 + 1])
    w = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * np.tile(weights, 4)
    ok = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    pixel = (np.tile(planes, 4) * height + cy) * width + cx
    images = np.zeros(count * height * width, np.float32)
    np.add.at(images, pixel[ok], w[ok].astype(np.float32))
    return images.reshape(count, height, width)


# --- The renderer ----------------------------------------------------------------------------

CLOUD_DRIFT = 0.035
"""How far clouds drift over 6 seconds, as a share of the frame width."""
SHIMMER = 0.0035
"""Amplitude of the water's shimmer, as a share of the frame height."""


class EffectRenderer:
    """Draws the named effects on each frame of one clip."""

    def __init__(
        self, effects: frozenset[Effect], path: CameraPath, fps: int, seed: int, cues: SceneCues | None
    ) -> None:
        self.effects = effects
        self._path = path
        self._fps = fps
        self._seed = seed
        self._cues = cues
        size = path.size
        self._size = size
        frames = len(path)
        rng = np.random.default_rng([seed, 104729])
        self._particles = [_ParticleSystem(e, path, fps, seed) for e in sorted(effects & PARTICLES)]
        self._colours = [_ycbcr(p.kind.colour) for p in self._particles]
        self._gain = np.ones(frames, np.float32)
        self._gain_field: Field | None = None
        self._flash = np.zeros(frames, np.float32)
        if Effect.FIRE in effects or Effect.CANDLE in effects:
            strong = Effect.FIRE in effects
            band = (1.5, 7.0) if strong else (0.8, 4.0)
            depth = 0.09 if strong else 0.06
            noise = np.clip(_band_noise(rng, frames, fps, band), -2.5, 2.5)
            self._gain *= 1.0 + depth * noise
            warm = cues.warm_light if cues is not None else None
            self._gain_field = _light_field(warm, 0.35)
        if Effect.NEON in effects:
            t = np.arange(frames) / fps
            buzz = (rng.random(frames) < 0.04).astype(np.float32)
            self._gain *= (1.0 + 0.1 * np.sin(2 * math.pi * 0.7 * t) - 0.25 * buzz).astype(np.float32)
            vivid = cues.vivid_light if cues is not None else None
            neon_field = _light_field(vivid, 0.3)
            self._gain_field = (
                neon_field if self._gain_field is None else np.maximum(self._gain_field, neon_field)
            )
        if Effect.LIGHTNING in effects:
            t = np.arange(frames) / fps
            duration = frames / fps
            strikes = 1 + int(rng.random() < 0.5)
            for _ in range(strikes):
                start = rng.uniform(0.15, 0.75) * duration
                for delay, strength in ((0.0, 1.0), (0.16, 0.7)):
                    after = t - start - delay
                    self._flash += np.where(
                        after >= 0, strength * np.exp(-np.maximum(after, 0) / 0.12), 0.0
                    ).astype(np.float32)
            self._flash = np.minimum(self._flash, 1.0)
        self._fog = [e for e in (Effect.FOG, Effect.SMOKE) if e in effects]
        self._fog_texture = (
            _tileable_noise(np.random.default_rng([seed, 15485863]), 96) if self._fog else None
        )
        self._cloud_direction = 1.0 if rng.random() < 0.5 else -1.0
        self._shimmer_phase = rng.random(2) * 2 * math.pi
        self.displaces = bool(effects & DISPLACEMENTS) and cues is not None
        duration = frames / fps
        drift = CLOUD_DRIFT * size.width * math.sqrt(duration / 6.0) if Effect.CLOUDS in effects else 0.0
        self._drift = drift
        self.margin = (drift + 2 * SHIMMER * size.height) if self.displaces else 0.0
        self._to_source: NDArray[np.float64] | None = None
        self._source = FrameSize(2, 2)
        self._luma_weights: tuple[Field, Field] | None = None

    @property
    def draws(self) -> bool:
        """Whether anything is laid over the frames (as opposed to displacing the background)."""
        return bool(self._particles or self._fog or self._gain_field is not None or self._flash.any())

    def bind(self, world_to_source: NDArray[np.float64], source: FrameSize, path: CameraPath) -> None:
        """Learn where the picture's cues sit on the frames: the renderer's placement."""
        to_source = world_to_source @ path.homographies
        self._to_source = to_source / to_source[:, 2:3, 2:3]
        self._source = source

    def displacement(
        self, index: int, at_rest: NDArray[np.float64], source: FrameSize
    ) -> NDArray[np.float64]:
        """World-pixel displacement of background points (given at rest, in source pixels)."""
        cues = self._cues
        out = np.zeros_like(at_rest)
        if cues is None:
            return out
        progress = index / max(len(self._path) - 1, 1)
        t = index / self._fps
        if Effect.CLOUDS in self.effects:
            sky = _sample(cues.sky, at_rest, source)
            # Content moves with the wind: a sample reaches back against it.
            out[0] -= self._cloud_direction * self._drift * progress * sky
        if Effect.WATER in self.effects:
            water = _sample(cues.water, at_rest, source)
            h = float(self._size.height)
            wavelength = 0.05 * h
            x = at_rest[0] * self._size.height / source.height
            y = at_rest[1] * self._size.height / source.height
            a, b = self._shimmer_phase
            out[1] += (
                SHIMMER
                * h
                * water
                * np.sin(2 * math.pi * (y / wavelength - 0.8 * t) + a + 0.8 * np.sin(x / (3 * wavelength)))
            )
            out[0] += (
                0.5
                * SHIMMER
                * h
                * water
                * np.sin(2 * math.pi * (x / (2.3 * wavelength) + y / (4 * wavelength) - 0.5 * t) + b)
            )
        return out

    def _field_on_frame(self, field: Field, index: int, size: tuple[int, int]) -> Field:
        """A cue field (over the picture) as the frame `index` shows it, at chroma resolution."""
        assert self._to_source is not None
        field_h, field_w = field.shape
        to_field = np.array(
            [
                [field_w / self._source.width, 0.0, 0.5 * field_w / self._source.width - 0.5],
                [0.0, field_h / self._source.height, 0.5 * field_h / self._source.height - 0.5],
                [0.0, 0.0, 1.0],
            ]
        )
        chroma_to_luma = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
        matrix = to_field @ self._to_source[index] @ chroma_to_luma
        out = np.empty((size[1], size[0]), np.float32)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        cv2.warpPerspective(field, matrix, size, dst=out, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return out

    def draw(
        self, index: int, luma: NDArray[np.uint8], chroma: tuple[NDArray[np.uint8], NDArray[np.uint8]]
    ) -> None:
        """Lay the frame's overlays on its planes, in place."""
        if not self.draws:
            return
        height, width = chroma[0].shape
        size = (width, height)
        layers = [
            (system.coverage(index, size), colour)
            for system, colour in zip(self._particles, self._colours, strict=True)
        ]
        for effect in self._fog:
            layers.append((self._fog_coverage(effect, index, size), self._fog_colour(effect)))
        if self._flash[index] > 0:
            sky = self._field_on_frame(self._cues.sky, index, size) if self._cues is not None else 0.0
            flash = np.full((height, width), 0.5 * self._flash[index], np.float32) * (0.7 + 0.3 * sky)
            layers.append((flash, _ycbcr((232, 236, 255))))
        if self._gain_field is None:
            if layers:
                keep8, add8 = _overlays_in_8_bits(layers)
                _lay_in_8_bits(luma, chroma, keep8, add8)
            return
        keep, add = _overlays(layers, (height, width))
        weight = self._field_on_frame(self._gain_field, index, size)
        gain = keep * (1.0 + (self._gain[index] - 1.0) * weight)
        # Only the part of the frame that something touches is redrawn; a margin of two
        # chroma pixels covers the enlargement's reach.
        touched = (np.abs(np.asarray(gain, np.float32) - 1.0) > 1e-4) | (add[0] > 1e-3)
        box = _touched_box(touched.astype(np.uint8), width, height)
        if box is None:
            return
        x0, y0, x1, y1 = box
        box_gain = np.ascontiguousarray(gain[y0:y1, x0:x1], np.float32)
        luma_box = luma[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
        full = (luma_box.shape[1], luma_box.shape[0])
        luma_gain = np.asarray(cv2.resize(box_gain, full, interpolation=cv2.INTER_LINEAR), np.float32)
        box_add = np.ascontiguousarray(add[0][y0:y1, x0:x1])
        luma_add = np.asarray(cv2.resize(box_add, full, interpolation=cv2.INTER_LINEAR), np.float32)
        _scale_and_add(luma_box, luma_gain, luma_add)
        box_keep = np.ascontiguousarray(keep[y0:y1, x0:x1], np.float32)
        for plane, extra in zip(chroma, add[1:], strict=True):
            _scale_and_add(plane[y0:y1, x0:x1], box_keep, np.ascontiguousarray(extra[y0:y1, x0:x1]))

    def _fog_colour(self, effect: Effect) -> NDArray[np.float32]:
        return _ycbcr((196, 200, 206) if effect is Effect.FOG else (170, 170, 172))

    def _fog_coverage(self, effect: Effect, index: int, size: tuple[int, int]) -> Field:
        assert self._fog_texture is not None
        width, height = size
        t = index / self._fps
        texture = self._fog_texture
        tile = texture.shape[0]
        total = np.zeros((height, width), np.float32)
        for octave, (scale, speed) in enumerate(((0.45, 0.025), (0.2, 0.06))):
            cells = tile / (scale * height)
            if effect is Effect.FOG:
                shift_x, shift_y = speed * t * height * (1 + octave), 0.0
            else:
                shift_x, shift_y = 0.3 * speed * t * height, -2.5 * speed * t * height
            matrix = np.array(
                [[cells, 0.0, -shift_x * cells + 17.0 * octave], [0.0, cells, -shift_y * cells]]
            )
            layer = np.empty((height, width), np.float32)
            cv2.warpAffine(
                texture,
                matrix,
                size,
                dst=layer,
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_WRAP,
            )
            total += layer * (0.65 if octave == 0 else 0.35)
        rows = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
        if effect is Effect.FOG:
            if self._cues is not None:
                far = 1.0 - np.clip(self._field_on_frame(self._cues.disparity, index, size), 0.0, 1.0)
                density = 0.25 + 0.45 * far
            else:
                density = np.broadcast_to(0.3 + 0.3 * rows, (height, width))
        else:
            density = np.broadcast_to(0.15 + 0.5 * rows**1.5, (height, width))
        return np.asarray(np.clip((total - 0.35) * 2.2, 0.0, 1.0) * density, np.float32)


def _touched_box(touched: NDArray[np.uint8], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) around the nonzero pixels, two pixels wider all round; None if none."""
    x, y, w, h = cv2.boundingRect(touched)
    if w == 0 or h == 0:
        return None
    return max(0, x - 2), max(0, y - 2), min(width, x + w + 2), min(height, y + h + 2)


Layer = tuple[Field, NDArray[np.float32]]
"""An overlay: its coverage (0..1) at chroma resolution, and its Y'CbCr colour."""


def _overlays(layers: list[Layer], shape: tuple[int, int]) -> tuple[Field, list[Field]]:
    """What `layers`, laid in order, leave of the frame, and the colour they lay over it
    (premultiplied, one plane per channel). The first layer sets both."""
    if not layers:
        return np.ones(shape, np.float32), [np.zeros(shape, np.float32) for _ in range(3)]
    coverage = np.clip(layers[0][0], 0.0, 1.0)
    keep = 1.0 - coverage
    add = [coverage * float(value) for value in layers[0][1]]
    for coverage, colour in layers[1:]:
        coverage = np.clip(coverage, 0.0, 1.0)
        rest = 1.0 - coverage
        for plane, value in zip(add, colour, strict=True):
            plane *= rest
            plane += coverage * float(value)
        keep *= rest
    return keep, add


def _overlays_in_8_bits(layers: list[Layer]) -> tuple[NDArray[np.uint8], list[NDArray[np.uint8]]]:
    """`_overlays` rounded to 8 bits (`keep` in 255ths); one layer goes there in one step."""
    if len(layers) == 1:
        coverage, colour = layers[0]
        coverage = np.clip(coverage, 0.0, 1.0)
        keep8 = cv2.convertScaleAbs(coverage, alpha=-255.0, beta=255.0)
        add8 = [cv2.convertScaleAbs(coverage, alpha=float(value)) for value in colour]
    else:
        keep, add = _overlays(layers, layers[0][0].shape)
        keep8 = cv2.convertScaleAbs(keep, alpha=255.0)
        add8 = [cv2.convertScaleAbs(plane) for plane in add]
    return np.asarray(keep8, np.uint8), [np.asarray(plane, np.uint8) for plane in add8]


def _lay_in_8_bits(
    luma: NDArray[np.uint8],
    chroma: tuple[NDArray[np.uint8], NDArray[np.uint8]],
    keep8: NDArray[np.uint8],
    add8: list[NDArray[np.uint8]],
) -> None:
    """``plane = plane * keep + add`` on each plane, `keep8` (255ths) and `add8` at chroma
    resolution.

    In 8 bits: the luma's share is enlarged and blended at four times the chroma's size,
    where float planes cost several times as much to enlarge, multiply and round (a frame of
    sparks touches most of the picture). A pixel no overlay reaches is left exactly as it was.
    """
    height, width = keep8.shape
    touched = np.asarray(cv2.bitwise_or(cv2.bitwise_not(keep8), add8[0]), np.uint8)
    box = _touched_box(touched, width, height)
    if box is None:
        return
    x0, y0, x1, y1 = box
    luma_box = luma[2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
    full = (luma_box.shape[1], luma_box.shape[0])
    luma_keep = np.asarray(cv2.resize(keep8[y0:y1, x0:x1], full, interpolation=cv2.INTER_LINEAR), np.uint8)
    luma_add = np.asarray(cv2.resize(add8[0][y0:y1, x0:x1], full, interpolation=cv2.INTER_LINEAR), np.uint8)
    _blend_8_bits(luma_box, luma_keep, luma_add)
    for plane, extra in zip(chroma, add8[1:], strict=True):
        _blend_8_bits(plane[y0:y1, x0:x1], keep8[y0:y1, x0:x1], extra[y0:y1, x0:x1])


def _blend_8_bits(plane: NDArray[np.uint8], keep: NDArray[np.uint8], extra: NDArray[np.uint8]) -> None:
    """``plane = plane * keep / 255 + extra`` in place, each step rounded and saturated."""
    blended = cv2.multiply(plane, keep, scale=1.0 / 255.0)
    cv2.add(blended, extra, dst=blended)
    plane[:] = blended


def _scale_and_add(plane: NDArray[np.uint8], gain: Field, extra: Field) -> None:
    """``plane = plane * gain + extra`` in place, saturating at the 8-bit range."""
    product = cv2.multiply(plane, gain, dtype=cv2.CV_32F)
    cv2.add(product, extra, dst=product)
    plane[:] = cv2.convertScaleAbs(product)


def _light_field(cue: Field | None, floor: float) -> Field:
    """Where a light's changes show: its cue, over a floor that lights the whole scene a little."""
    if cue is None or float(cue.max()) < 1e-3:
        return np.full((8, 8), floor, np.float32)
    return np.asarray(floor + (1.0 - floor) * cue, np.float32)


def _sample(field: Field, at_rest: NDArray[np.float64], source: FrameSize) -> NDArray[np.float64]:
    """A cue field's values at points given in source pixels."""
    field_h, field_w = field.shape
    fx = ((at_rest[0] + 0.5) * field_w / source.width - 0.5).astype(np.float32)[None]
    fy = ((at_rest[1] + 0.5) * field_h / source.height - 0.5).astype(np.float32)[None]
    values = cv2.remap(field, fx, fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(values[0], np.float64)


def _tileable_noise(rng: np.random.Generator, side: int) -> Field:
    """Smooth noise that wraps at its edges (filtered in the frequency domain), 0..1."""
    spectrum = np.fft.fft2(rng.standard_normal((side, side)))
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.fftfreq(side)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    spectrum *= np.exp(-((radius / 0.06) ** 2)) + 0.35 * np.exp(-((radius / 0.15) ** 2))
    noise = np.real(np.fft.ifft2(spectrum))
    noise = (noise - noise.min()) / max(float(noise.max() - noise.min()), 1e-6)
    return np.asarray(noise, np.float32)
