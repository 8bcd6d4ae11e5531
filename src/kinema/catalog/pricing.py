"""What a task costs, in credits, by model, duration and resolution.

The table is complete by construction: every combination the catalog lets a request ask for
has a price, so pricing an accepted request never fails. Operators override single prices
from settings with a flat mapping such as ``{"hailuo/2-3-image-to-video-standard:6:768P": 30}``
(an environment variable holding JSON); overrides are merged onto `DEFAULT_PRICES`, and a
key that names no combination the catalog offers is refused rather than silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from kinema.catalog.models import Catalog
from kinema.catalog.validation import TaskRequest
from kinema.domain.video import Resolution

PriceKey = tuple[str, int, Resolution]
"""(model name, duration in seconds, resolution)."""

_P512, _P768, _P1080 = Resolution.P512, Resolution.P768, Resolution.P1080

DEFAULT_PRICES: Mapping[PriceKey, int] = {
    # The seed's published example: 768P for 6 s costs 30 credits.
    ("hailuo/2-3-image-to-video-standard", 6, _P768): 30,
    ("hailuo/2-3-image-to-video-standard", 10, _P768): 50,
    ("hailuo/2-3-image-to-video-standard", 6, _P1080): 50,
    ("hailuo/2-3-image-to-video-pro", 6, _P768): 45,
    ("hailuo/2-3-image-to-video-pro", 10, _P768): 80,
    ("hailuo/2-3-image-to-video-pro", 6, _P1080): 80,
    ("hailuo/02-image-to-video-standard", 6, _P512): 12,
    ("hailuo/02-image-to-video-standard", 10, _P512): 20,
    ("hailuo/02-image-to-video-standard", 6, _P768): 30,
    ("hailuo/02-image-to-video-standard", 10, _P768): 50,
    ("hailuo/02-text-to-video-standard", 6, _P768): 30,
    ("hailuo/02-text-to-video-standard", 10, _P768): 50,
}


def price_key_text(key: PriceKey) -> str:
    """The settings spelling of a key: ``model:seconds:resolution``."""
    model, duration_s, resolution = key
    return f"{model}:{duration_s}:{resolution.value}"


def parse_price_key(text: str) -> PriceKey:
    """A key from its settings spelling; ValueError when it is not ``model:seconds:resolution``."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isascii() or not parts[1].isdigit():
        raise ValueError(f"price key {text!r} is not of the form 'model:seconds:resolution'")
    model, seconds, resolution = parts
    try:
        return model, int(seconds), Resolution(resolution.upper())
    except ValueError:
        known = ", ".join(member.value for member in Resolution)
        raise ValueError(f"price key {text!r}: resolution must be one of {known}") from None


class PriceTable:
    """Credits per (model, duration, resolution), complete for a catalog."""

    def __init__(self, catalog: Catalog, prices: Mapping[PriceKey, int]) -> None:
        """A table holding exactly a price for every combination `catalog` offers.

        ValueError when one is missing, when a key names something the catalog does not offer,
        or when a price is not a whole number of credits at least zero.
        """
        offered = {(model.name, d, r) for model in catalog for d, r in model.combinations()}
        for key, credits in prices.items():
            if key not in offered:
                raise ValueError(f"price for {price_key_text(key)}: the catalog offers no such combination")
            if isinstance(credits, bool) or not isinstance(credits, int):
                raise ValueError(f"price for {price_key_text(key)} must be a whole number of credits")
            if credits < 0:
                raise ValueError(f"price for {price_key_text(key)} must not be negative, got {credits}")
        missing = [
            key for model in catalog for key in _keys(model.name, model.combinations()) if key not in prices
        ]
        if missing:
            names = ", ".join(price_key_text(key) for key in missing)
            raise ValueError(f"no price for {names}")
        self._prices: dict[PriceKey, int] = {
            key: prices[key] for model in catalog for key in _keys(model.name, model.combinations())
        }

    @classmethod
    def from_config(cls, catalog: Catalog, overrides: Mapping[str, object] | None = None) -> PriceTable:
        """The default prices for `catalog`, with `overrides` (settings spelling) merged on top.

        Defaults for models the catalog lacks are dropped; a model the defaults do not cover
        must be priced in full by the overrides.
        """
        offered = {(model.name, d, r) for model in catalog for d, r in model.combinations()}
        prices: dict[PriceKey, int] = {
            key: credits for key, credits in DEFAULT_PRICES.items() if key in offered
        }
        overridden: set[PriceKey] = set()
        for text, credits in (overrides or {}).items():
            key = parse_price_key(text)
            if key in overridden:
                raise ValueError(f"price overrides name {price_key_text(key)} twice")
            overridden.add(key)
            if isinstance(credits, bool) or not isinstance(credits, int):
                raise ValueError(f"price for {text!r} must be a whole number of credits, got {credits!r}")
            prices[key] = credits
        return cls(catalog, prices)

    @classmethod
    def from_json(cls, catalog: Catalog, text: str) -> PriceTable:
        """As `from_config`, from a JSON object (an environment variable's value); "" means no overrides."""
        if not text.strip():
            return cls.from_config(catalog)
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"price overrides are not valid JSON: {error}") from None
        if not isinstance(overrides, dict):
            raise ValueError("price overrides must be a JSON object of 'model:seconds:resolution' to credits")
        return cls.from_config(catalog, overrides)

    def price(self, request: TaskRequest) -> int:
        """The credits a valid request costs."""
        return self.credits(request.model.name, request.duration_s, request.resolution)

    def credits(self, model: str, duration_s: int, resolution: Resolution) -> int:
        """The credits for one combination; KeyError when the catalog does not offer it."""
        key = (model, duration_s, resolution)
        if key not in self._prices:
            raise KeyError(f"no price for {price_key_text(key)}")
        return self._prices[key]

    def for_model(self, model: str) -> dict[tuple[int, Resolution], int]:
        """A model's prices by (seconds, resolution), in catalog order, for the models listing."""
        return {(d, r): credits for (name, d, r), credits in self._prices.items() if name == model}

    def as_config(self) -> dict[str, int]:
        """The whole table in settings spelling; `from_config` of it rebuilds the same table."""
        return {price_key_text(key): credits for key, credits in self._prices.items()}


def _keys(model: str, combinations: tuple[tuple[int, Resolution], ...]) -> list[PriceKey]:
    return [(model, duration_s, resolution) for duration_s, resolution in combinations]
