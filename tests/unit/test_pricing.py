from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinema.catalog import (
    DEFAULT_PRICES,
    Catalog,
    PriceTable,
    default_catalog,
    parse_price_key,
    price_key_text,
    validate_create_task,
)
from kinema.catalog.models import HAILUO_02_TEXT_STANDARD, HAILUO_23_STANDARD
from kinema.domain.errors import InvalidInput
from kinema.domain.video import Resolution

CATALOG = default_catalog()
STANDARD = "hailuo/2-3-image-to-video-standard"
PRO = "hailuo/2-3-image-to-video-pro"
I2V_02 = "hailuo/02-image-to-video-standard"
T2V_02 = "hailuo/02-text-to-video-standard"
IMAGE = "https://example.com/cat.png"


def request_for(model: str, duration: str, resolution: str | None) -> Any:
    fields: dict[str, Any] = {"prompt": "a cat", "duration": duration}
    if model != T2V_02:
        fields["image_url"] = IMAGE
    if resolution is not None:
        fields["resolution"] = resolution
    return validate_create_task({"model": model, "input": fields}, CATALOG)


@pytest.mark.parametrize(
    ("model", "duration", "resolution", "credits"),
    [
        (STANDARD, "6", "768P", 30),  # the seed's published example
        (STANDARD, "10", "768P", 50),
        (STANDARD, "6", "1080P", 50),
        (PRO, "6", "768P", 45),
        (PRO, "10", "768P", 80),
        (PRO, "6", "1080P", 80),
        (I2V_02, "6", "512P", 12),
        (I2V_02, "10", "512P", 20),
        (I2V_02, "6", "768P", 30),
        (I2V_02, "10", "768P", 50),
        (T2V_02, "6", None, 30),
        (T2V_02, "10", None, 50),
    ],
)
def test_default_prices_cover_every_allowed_combination(
    model: str, duration: str, resolution: str | None, credits: int
) -> None:
    table = PriceTable.from_config(CATALOG)
    assert table.price(request_for(model, duration, resolution)) == credits


def test_the_defaults_are_exactly_the_catalogs_combinations() -> None:
    offered = {(m.name, d, r) for m in CATALOG for d, r in m.combinations()}
    assert set(DEFAULT_PRICES) == offered
    table = PriceTable(CATALOG, DEFAULT_PRICES)
    assert len(table.as_config()) == len(offered) == 12


def test_the_seed_example_costs_30_credits() -> None:
    seed = {"model": STANDARD, "input": {"prompt": "knights", "image_url": IMAGE}}
    assert PriceTable.from_config(CATALOG).price(validate_create_task(seed, CATALOG)) == 30


@pytest.mark.parametrize(
    ("overrides", "key", "credits"),
    [
        ({"hailuo/2-3-image-to-video-standard:6:768P": 10}, (STANDARD, 6, Resolution.P768), 10),
        ({"hailuo/2-3-image-to-video-pro:6:1080p": 99}, (PRO, 6, Resolution.P1080), 99),
        ({"hailuo/02-text-to-video-standard:10:768P": 0}, (T2V_02, 10, Resolution.P768), 0),
    ],
)
def test_overrides_merge_onto_the_defaults(overrides: dict[str, object], key: Any, credits: int) -> None:
    table = PriceTable.from_config(CATALOG, overrides)
    assert table.credits(*key) == credits
    untouched = {
        k: v for k, v in PriceTable.from_config(CATALOG).as_config().items() if k != price_key_text(key)
    }
    assert untouched.items() <= table.as_config().items()


def test_overrides_from_json_as_in_an_environment_variable() -> None:
    table = PriceTable.from_json(CATALOG, json.dumps({"hailuo/02-image-to-video-standard:10:512P": 25}))
    assert table.credits(I2V_02, 10, Resolution.P512) == 25
    assert PriceTable.from_json(CATALOG, "  ").as_config() == PriceTable.from_config(CATALOG).as_config()


def test_the_table_round_trips_through_its_settings_spelling() -> None:
    table = PriceTable.from_config(CATALOG, {"hailuo/2-3-image-to-video-pro:10:768P": 81})
    assert PriceTable.from_config(CATALOG, table.as_config()).as_config() == table.as_config()


def test_prices_by_model_for_the_listing() -> None:
    table = PriceTable.from_config(CATALOG)
    assert table.for_model(STANDARD) == {
        (6, Resolution.P768): 30,
        (10, Resolution.P768): 50,
        (6, Resolution.P1080): 50,
    }
    assert table.for_model("hailuo/nope") == {}


def test_a_smaller_catalog_drops_the_other_defaults() -> None:
    table = PriceTable.from_config(Catalog([HAILUO_23_STANDARD]))
    assert set(table.as_config()) == {
        "hailuo/2-3-image-to-video-standard:6:768P",
        "hailuo/2-3-image-to-video-standard:10:768P",
        "hailuo/2-3-image-to-video-standard:6:1080P",
    }


def test_unpriced_combinations_are_reported() -> None:
    with pytest.raises(KeyError, match="no price for hailuo/2-3-image-to-video-standard:10:1080P"):
        PriceTable.from_config(CATALOG).credits(STANDARD, 10, Resolution.P1080)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hailuo/2-3-image-to-video-standard:6:768P": -1}, "must not be negative"),
        ({"hailuo/2-3-image-to-video-standard:6:768P": 1.5}, "whole number of credits"),
        ({"hailuo/2-3-image-to-video-standard:6:768P": "30"}, "whole number of credits"),
        ({"hailuo/2-3-image-to-video-standard:6:768P": True}, "whole number of credits"),
        ({"hailuo/2-3-image-to-video-standard:6:768P": None}, "whole number of credits"),
        ({"hailuo/2-3-image-to-video-standard:10:1080P": 90}, "offers no such combination"),
        ({"hailuo/2-3-image-to-video-standard:8:768P": 40}, "offers no such combination"),
        ({"hailuo/nope:6:768P": 40}, "offers no such combination"),
        ({"hailuo/02-text-to-video-standard:6:1080P": 40}, "offers no such combination"),
        ({"hailuo/2-3-image-to-video-standard:6": 30}, "not of the form"),
        ({"hailuo/2-3-image-to-video-standard:six:768P": 30}, "not of the form"),
        ({":6:768P": 30}, "not of the form"),
        ({"hailuo/2-3-image-to-video-standard:6:720P": 30}, "resolution must be one of 512P, 768P, 1080P"),
        (
            {"hailuo/2-3-image-to-video-standard:6:768P": 1, "hailuo/2-3-image-to-video-standard:6:768p": 2},
            "twice",
        ),
    ],
)
def test_bad_overrides_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceTable.from_config(CATALOG, overrides)


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "not valid JSON"), ("[1]", "must be a JSON object"), ('{"x": 1}', "not of the form")],
)
def test_bad_json_overrides_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceTable.from_json(CATALOG, text)


def test_a_catalog_model_without_a_price_is_a_configuration_error() -> None:
    custom = Catalog([replace(HAILUO_02_TEXT_STANDARD, name="acme/t2v")])
    with pytest.raises(ValueError, match=r"no price for acme/t2v:6:768P, acme/t2v:10:768P"):
        PriceTable.from_config(custom)
    table = PriceTable.from_config(custom, {"acme/t2v:6:768P": 1, "acme/t2v:10:768P": 2})
    assert table.for_model("acme/t2v") == {(6, Resolution.P768): 1, (10, Resolution.P768): 2}


def test_a_complete_table_must_cover_the_catalog() -> None:
    partial = {key: credits for key, credits in DEFAULT_PRICES.items() if key[0] != PRO}
    with pytest.raises(ValueError, match="no price for hailuo/2-3-image-to-video-pro:6:768P"):
        PriceTable(CATALOG, partial)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("hailuo/2-3-image-to-video-standard:6:768P", (STANDARD, 6, Resolution.P768)),
        ("hailuo/2-3-image-to-video-standard:10:1080p", (STANDARD, 10, Resolution.P1080)),
    ],
)
def test_price_keys_parse(text: str, key: Any) -> None:
    assert parse_price_key(text) == key
    assert parse_price_key(price_key_text(key)) == key


@given(
    st.sampled_from([m.name for m in CATALOG]),
    st.sampled_from(["6", "10", 6, 10]),
    st.sampled_from(["512P", "768P", "1080P", None]),
)
def test_every_valid_request_has_a_price(model: str, duration: object, resolution: str | None) -> None:
    fields: dict[str, object] = {"prompt": "a cat", "duration": duration}
    if model != T2V_02:
        fields["image_url"] = IMAGE
        if resolution is not None:
            fields["resolution"] = resolution
    try:
        request = validate_create_task({"model": model, "input": fields}, CATALOG)
    except InvalidInput:  # refused combinations are the catalog's business, tested there
        return
    assert PriceTable.from_config(CATALOG).price(request) >= 0
