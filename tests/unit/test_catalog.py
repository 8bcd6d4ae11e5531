from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinema.catalog import (
    Catalog,
    FieldKind,
    ForbiddenCombination,
    InputField,
    ModelSpec,
    TaskRequest,
    default_catalog,
    validate_create_task,
)
from kinema.domain.errors import InvalidInput
from kinema.domain.video import Capability, Resolution

CATALOG = default_catalog()
STANDARD = "hailuo/2-3-image-to-video-standard"
PRO = "hailuo/2-3-image-to-video-pro"
I2V_02 = "hailuo/02-image-to-video-standard"
T2V_02 = "hailuo/02-text-to-video-standard"
IMAGE = "https://file.aiquickdraw.com/custom-page/akr/section-images/1761736401898mpm67du5.webp"

# The seed's published example body.
SEED_EXAMPLE: dict[str, Any] = {
    "model": STANDARD,
    "callBackUrl": "https://your-domain.com/api/callback",
    "input": {
        "prompt": "Two armored medieval knights clash in an intense duel at sunset, cinematic lighting.",
        "image_url": IMAGE,
        "duration": "6",
        "resolution": "768P",
    },
}


def body(model: str = STANDARD, *, top: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A createTask body: a valid minimal input for `model`, with `fields` replacing or adding keys.

    A field given as ... is removed.
    """
    base: dict[str, Any] = {"prompt": "a cat"} if model == T2V_02 else {"prompt": "a cat", "image_url": IMAGE}
    base.update(fields)
    data: dict[str, Any] = {"model": model, "input": {k: v for k, v in base.items() if v is not ...}}
    data.update(top or {})
    return {k: v for k, v in data.items() if v is not ...}


def validate(data: object) -> TaskRequest:
    return validate_create_task(data, CATALOG)


# --- The catalog as data ---------------------------------------------------------------------


def test_the_catalog_holds_exactly_the_four_models_seed_first() -> None:
    assert CATALOG.names == (STANDARD, PRO, I2V_02, T2V_02)
    assert len(CATALOG) == 4
    assert [m.name for m in CATALOG] == list(CATALOG.names)
    assert STANDARD in CATALOG
    assert CATALOG.get("hailuo/nope") is None


@pytest.mark.parametrize(
    ("model", "capability", "durations", "resolutions", "combinations"),
    [
        (
            STANDARD,
            Capability.IMAGE_TO_VIDEO,
            (6, 10),
            ("768P", "1080P"),
            {(6, "768P"), (10, "768P"), (6, "1080P")},
        ),
        (
            PRO,
            Capability.IMAGE_TO_VIDEO,
            (6, 10),
            ("768P", "1080P"),
            {(6, "768P"), (10, "768P"), (6, "1080P")},
        ),
        (
            I2V_02,
            Capability.IMAGE_TO_VIDEO,
            (6, 10),
            ("512P", "768P"),
            {(6, "512P"), (10, "512P"), (6, "768P"), (10, "768P")},
        ),
        (T2V_02, Capability.TEXT_TO_VIDEO, (6, 10), ("768P",), {(6, "768P"), (10, "768P")}),
    ],
)
def test_each_model_declares_its_capability_and_offers(
    model: str,
    capability: Capability,
    durations: tuple[int, ...],
    resolutions: tuple[str, ...],
    combinations: set[tuple[int, str]],
) -> None:
    spec = CATALOG.get(model)
    assert spec is not None
    assert spec.capability is capability
    assert spec.durations == durations
    assert spec.resolutions == tuple(Resolution(r) for r in resolutions)
    assert set(spec.combinations()) == {(d, Resolution(r)) for d, r in combinations}


def test_json_schema_of_the_seed_matches_the_published_input() -> None:
    schema = CATALOG.json_schema(STANDARD)
    assert schema["type"] == "object"
    assert schema["required"] == ["prompt", "image_url"]
    assert schema["additionalProperties"] is False
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert list(properties) == ["prompt", "image_url", "duration", "resolution"]
    assert properties["prompt"]["maxLength"] == 5000
    assert properties["image_url"]["format"] == "uri"
    assert properties["duration"] == {
        "description": properties["duration"]["description"],
        "type": "string",
        "enum": ["6", "10"],
        "default": "6",
    }
    assert properties["resolution"]["enum"] == ["768P", "1080P"]
    assert properties["resolution"]["default"] == "768P"
    assert schema["x-rules"] == [
        {
            "forbidden": {"duration": "10", "resolution": "1080P"},
            "message": "10 seconds videos are not supported for 1080P resolution",
        }
    ]


def test_json_schema_of_the_other_models() -> None:
    pro = CATALOG.json_schema(PRO)["properties"]
    assert isinstance(pro, dict)
    assert pro["resolution"]["default"] == "1080P"
    i2v = CATALOG.json_schema(I2V_02)
    assert "x-rules" not in i2v
    assert isinstance(i2v["properties"], dict)
    assert i2v["properties"]["prompt_optimizer"]["type"] == "boolean"
    assert i2v["properties"]["prompt_optimizer"]["default"] is True
    assert i2v["properties"]["duration"]["default"] == "10"
    assert i2v["properties"]["end_image_url"]["format"] == "uri"
    t2v = CATALOG.json_schema(T2V_02)
    assert t2v["required"] == ["prompt"]
    assert isinstance(t2v["properties"], dict)
    assert list(t2v["properties"]) == ["prompt", "prompt_optimizer", "duration"]
    spec = CATALOG.get(T2V_02)
    assert spec is not None
    assert CATALOG.json_schema(spec) == t2v
    with pytest.raises(KeyError):
        CATALOG.json_schema("hailuo/nope")


_DURATION = InputField("duration", FieldKind.CHOICE, "d", choices=("6",), default="6", accepts_integers=True)


def _tiny_model() -> ModelSpec:
    return ModelSpec("m", Capability.TEXT_TO_VIDEO, "d", (_DURATION,), output_resolution=Resolution.P768)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: InputField("a", FieldKind.CHOICE, "d"), "needs choices"),
        (
            lambda: InputField("a", FieldKind.CHOICE, "d", choices=("x",), default="y"),
            "not one of its choices",
        ),
        (lambda: InputField("a", FieldKind.CHOICE, "d", choices=("x",), accepts_integers=True), "digit"),
        (lambda: InputField("a", FieldKind.TEXT, "d"), "max_length"),
        (lambda: InputField("a", FieldKind.FLAG, "d", max_length=3), "only text and URL"),
        (lambda: InputField("a", FieldKind.FLAG, "d", choices=("x",)), "only a choice"),
        (lambda: InputField("a", FieldKind.FLAG, "d", default="yes"), "boolean"),
        (
            lambda: InputField("a", FieldKind.TEXT, "d", max_length=3, required=True, default="x"),
            "no default",
        ),
        (lambda: ModelSpec("m", Capability.TEXT_TO_VIDEO, "d", ()), "duration"),
        (
            lambda: ModelSpec(
                "m",
                Capability.TEXT_TO_VIDEO,
                "d",
                (InputField("duration", FieldKind.CHOICE, "d", choices=("6",)),),
            ),
            "duration",
        ),
        (lambda: ModelSpec("m", Capability.TEXT_TO_VIDEO, "d", (_DURATION,)), "exactly one"),
        (
            lambda: ModelSpec(
                "m",
                Capability.TEXT_TO_VIDEO,
                "d",
                (_DURATION, InputField("resolution", FieldKind.CHOICE, "d", choices=("4K",))),
            ),
            "resolution choices",
        ),
        (lambda: ModelSpec("m", Capability.TEXT_TO_VIDEO, "d", (_DURATION, _DURATION), ()), "repeat"),
        (
            lambda: ModelSpec(
                "m",
                Capability.TEXT_TO_VIDEO,
                "d",
                (_DURATION,),
                (ForbiddenCombination((("size", "x"),), "no"),),
                Resolution.P768,
            ),
            "unknown field size",
        ),
        (lambda: Catalog([_tiny_model(), _tiny_model()]), "twice"),
    ],
)
def test_inconsistent_model_descriptions_are_refused(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# --- Valid requests ----------------------------------------------------------------------------


def test_the_seed_example_is_valid() -> None:
    request = validate(SEED_EXAMPLE)
    assert request.model.name == STANDARD
    assert request.callback_url == "https://your-domain.com/api/callback"
    assert request.input == SEED_EXAMPLE["input"]
    assert request.prompt == SEED_EXAMPLE["input"]["prompt"]
    assert request.image_url == IMAGE
    assert request.end_image_url is None
    assert request.duration_s == 6
    assert request.resolution is Resolution.P768
    assert request.prompt_optimizer is None


@pytest.mark.parametrize(
    ("data", "expected_input"),
    [
        pytest.param(
            body(),
            {"prompt": "a cat", "image_url": IMAGE, "duration": "6", "resolution": "768P"},
            id="seed-defaults",
        ),
        pytest.param(body(duration=6), {"duration": "6"}, id="integer-6-normalised"),
        pytest.param(body(duration=10), {"duration": "10"}, id="integer-10-normalised"),
        pytest.param(body(duration="10"), {"duration": "10", "resolution": "768P"}, id="10s-at-768P"),
        pytest.param(body(resolution="1080P"), {"resolution": "1080P", "duration": "6"}, id="1080P-6s"),
        pytest.param(body(resolution="1080p"), {"resolution": "1080P"}, id="resolution-any-case"),
        pytest.param(
            body(duration=None, resolution=None), {"duration": "6", "resolution": "768P"}, id="null-is-absent"
        ),
        pytest.param(body(top={"callBackUrl": None}), {"duration": "6"}, id="null-callback"),
        pytest.param(body(prompt="x" * 5000), {"prompt": "x" * 5000}, id="prompt-exactly-5000"),
        pytest.param(body(prompt="é" * 5000), {"prompt": "é" * 5000}, id="prompt-5000-code-points"),
        pytest.param(body(prompt="🎬" * 5000), {"prompt": "🎬" * 5000}, id="prompt-5000-astral-code-points"),
        pytest.param(body(PRO), {"duration": "6", "resolution": "1080P"}, id="pro-defaults-to-1080P"),
        pytest.param(body(PRO, duration="10", resolution="768P"), {"duration": "10"}, id="pro-10s-at-768P"),
        pytest.param(
            body(I2V_02),
            {
                "prompt": "a cat",
                "image_url": IMAGE,
                "prompt_optimizer": True,
                "duration": "10",
                "resolution": "768P",
            },
            id="02-defaults",
        ),
        pytest.param(
            body(I2V_02, resolution="512P", duration="10"), {"resolution": "512P"}, id="02-10s-at-512P"
        ),
        pytest.param(body(I2V_02, prompt="x" * 1500), {"prompt": "x" * 1500}, id="02-prompt-exactly-1500"),
        pytest.param(
            body(I2V_02, end_image_url=IMAGE, prompt_optimizer=False),
            {"end_image_url": IMAGE, "prompt_optimizer": False},
            id="02-end-image-and-optimizer",
        ),
        pytest.param(
            body(T2V_02),
            {"prompt": "a cat", "prompt_optimizer": True, "duration": "6"},
            id="text-to-video-no-image",
        ),
        pytest.param(
            body(image_url="http://[::1]:8080/a.png"), {"image_url": "http://[::1]:8080/a.png"}, id="ipv6"
        ),
        pytest.param(
            body(image_url="HTTPS://Example.COM/a.png"), {"image_url": "HTTPS://Example.COM/a.png"}, id="caps"
        ),
    ],
)
def test_valid_requests_are_normalised(data: dict[str, Any], expected_input: dict[str, Any]) -> None:
    request = validate(data)
    assert expected_input.items() <= request.input.items()


def test_typed_accessors() -> None:
    request = validate(
        body(I2V_02, end_image_url=IMAGE, prompt_optimizer=False, duration=6, resolution="512p")
    )
    assert (request.duration_s, request.resolution, request.prompt_optimizer) == (6, Resolution.P512, False)
    assert request.end_image_url == IMAGE
    text = validate(body(T2V_02, duration=10))
    assert (text.image_url, text.duration_s, text.resolution) == (None, 10, Resolution.P768)
    assert "resolution" not in text.input
    assert text.prompt_optimizer is True


def test_the_text_to_video_model_fixes_768p() -> None:
    spec = CATALOG.get(T2V_02)
    assert spec is not None
    assert spec.output_resolution is Resolution.P768
    assert spec.field("image_url") is None


# --- Refusals: one case per rule and message ---------------------------------------------------

TOO_LONG_URL = "https://example.com/" + "a" * (2048 - len("https://example.com/") + 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # The body and the model.
        pytest.param([], "The request body must be a JSON object", id="body-list"),
        pytest.param("{}", "The request body must be a JSON object", id="body-string"),
        pytest.param(None, "The request body must be a JSON object", id="body-null"),
        pytest.param({"input": {}}, "model is required", id="model-missing"),
        pytest.param(body(top={"model": None}), "model is required", id="model-null"),
        pytest.param(body(top={"model": 3}), "model must be a string", id="model-not-string"),
        pytest.param(
            body("hailuo/nope"), "The model name you specified is not supported", id="unknown-model"
        ),
        pytest.param(
            body(STANDARD.upper()), "The model name you specified is not supported", id="model-case"
        ),
        pytest.param(body(""), "The model name you specified is not supported", id="model-empty"),
        pytest.param(
            {"model": "x", "foo": 1}, "The model name you specified is not supported", id="model-first"
        ),
        # Top level.
        pytest.param(
            body(top={"foo": 1}), "foo is not a field of the createTask request", id="unknown-top-key"
        ),
        pytest.param(
            body(top={"callbackUrl": "https://a.example/"}),
            "callbackUrl is not a field of the createTask request",
            id="top-key-case",
        ),
        pytest.param(
            body(top={"b": 1, "a": 1}), "a is not a field of the createTask request", id="unknown-keys-sorted"
        ),
        pytest.param(
            body(top={"x\ny": 1}), '"x\\ny" is not a field of the createTask request', id="key-shown-quoted"
        ),
        pytest.param(body(top={"callBackUrl": 5}), "callBackUrl must be a string", id="callback-not-string"),
        pytest.param(
            body(top={"callBackUrl": "ftp://a.example/cb"}),
            "callBackUrl must be an absolute http or https URL",
            id="callback-scheme",
        ),
        pytest.param(
            body(top={"callBackUrl": "/api/callback"}),
            "callBackUrl must be an absolute http or https URL",
            id="callback-relative",
        ),
        pytest.param(
            body(top={"callBackUrl": ""}),
            "callBackUrl must be an absolute http or https URL",
            id="callback-empty",
        ),
        pytest.param(
            body(top={"callBackUrl": TOO_LONG_URL}),
            "callBackUrl must be at most 2048 characters",
            id="callback-too-long",
        ),
        # Input.
        pytest.param({"model": STANDARD}, "input is required", id="input-missing"),
        pytest.param(body(top={"input": None}), "input is required", id="input-null"),
        pytest.param(body(top={"input": ["a cat"]}), "input must be an object", id="input-list"),
        pytest.param(body(top={"input": "a cat"}), "input must be an object", id="input-string"),
        pytest.param(
            body(foo=1),
            "input.foo is not a field of hailuo/2-3-image-to-video-standard",
            id="unknown-input-key",
        ),
        pytest.param(
            body(prompt=None, foo=1),
            "input.foo is not a field of hailuo/2-3-image-to-video-standard",
            id="unknown-key-before-fields",
        ),
        pytest.param(
            body(prompt_optimizer=True),
            "input.prompt_optimizer is not a field of hailuo/2-3-image-to-video-standard",
            id="field-of-another-model",
        ),
        pytest.param(
            body(**dict[str, Any]({"x" * 100: 1})),
            f'input."{"x" * 64}"... is not a field of hailuo/2-3-image-to-video-standard',
            id="long-key-truncated",
        ),
        # prompt
        pytest.param(body(prompt=...), "input.prompt is required", id="prompt-missing"),
        pytest.param(body(prompt=None), "input.prompt is required", id="prompt-null"),
        pytest.param(body(prompt=5), "input.prompt must be a string", id="prompt-number"),
        pytest.param(body(prompt=["a"]), "input.prompt must be a string", id="prompt-list"),
        pytest.param(body(prompt=""), "input.prompt must not be blank", id="prompt-empty"),
        pytest.param(body(prompt=" \n\t"), "input.prompt must not be blank", id="prompt-blank"),
        pytest.param(
            body(prompt="x" * 5001), "input.prompt must be at most 5000 characters", id="prompt-5001"
        ),
        pytest.param(
            body(prompt="a\x00b"),
            "input.prompt must not contain NUL characters or unpaired surrogates",
            id="prompt-nul",
        ),
        pytest.param(
            body(prompt="a\ud800b"),
            "input.prompt must not contain NUL characters or unpaired surrogates",
            id="prompt-lone-surrogate",
        ),
        # image_url
        pytest.param(body(image_url=...), "input.image_url is required", id="image-missing"),
        pytest.param(body(image_url={"url": IMAGE}), "input.image_url must be a string", id="image-object"),
        pytest.param(
            body(image_url="file:///etc/passwd"),
            "input.image_url must be an absolute http or https URL",
            id="image-file-scheme",
        ),
        pytest.param(
            body(image_url="data:image/png;base64,AAAA"),
            "input.image_url must be an absolute http or https URL",
            id="image-data-url",
        ),
        pytest.param(
            body(image_url="https:///a.png"),
            "input.image_url must be an absolute http or https URL",
            id="image-no-host",
        ),
        pytest.param(
            body(image_url="https://a.example/my cat.png"),
            "input.image_url must be an absolute http or https URL",
            id="image-space",
        ),
        pytest.param(
            body(image_url="https://a.example/\x7fcat.png"),
            "input.image_url must be an absolute http or https URL",
            id="image-control",
        ),
        pytest.param(
            body(image_url=" https://a.example/cat.png"),
            "input.image_url must be an absolute http or https URL",
            id="image-leading-space",
        ),
        pytest.param(
            body(image_url="https://a.example:99999/cat.png"),
            "input.image_url must be an absolute http or https URL",
            id="image-bad-port",
        ),
        pytest.param(
            body(image_url="http://[::1/cat.png"),
            "input.image_url must be an absolute http or https URL",
            id="image-bad-ipv6",
        ),
        pytest.param(
            body(image_url="example.com/cat.png"),
            "input.image_url must be an absolute http or https URL",
            id="image-no-scheme",
        ),
        pytest.param(
            body(image_url=TOO_LONG_URL),
            "input.image_url must be at most 2048 characters",
            id="image-too-long",
        ),
        # duration
        pytest.param(body(duration="5"), 'input.duration must be one of "6", "10"', id="duration-5"),
        pytest.param(body(duration=5), 'input.duration must be one of "6", "10"', id="duration-int-5"),
        pytest.param(body(duration=True), 'input.duration must be one of "6", "10"', id="duration-bool"),
        pytest.param(body(duration=6.0), 'input.duration must be one of "6", "10"', id="duration-float-6"),
        pytest.param(body(duration=6.5), 'input.duration must be one of "6", "10"', id="duration-float"),
        pytest.param(
            body(duration="6.0"), 'input.duration must be one of "6", "10"', id="duration-6.0-string"
        ),
        pytest.param(body(duration=" 6"), 'input.duration must be one of "6", "10"', id="duration-padded"),
        pytest.param(body(duration="6s"), 'input.duration must be one of "6", "10"', id="duration-suffix"),
        pytest.param(body(duration=10**5000), 'input.duration must be one of "6", "10"', id="duration-huge"),
        pytest.param(body(duration=["6"]), 'input.duration must be one of "6", "10"', id="duration-list"),
        # resolution
        pytest.param(
            body(resolution="720P"), 'input.resolution must be one of "768P", "1080P"', id="resolution-720"
        ),
        pytest.param(
            body(resolution="512P"), 'input.resolution must be one of "768P", "1080P"', id="resolution-512"
        ),
        pytest.param(
            body(resolution=768), 'input.resolution must be one of "768P", "1080P"', id="resolution-int"
        ),
        pytest.param(
            body(resolution="768"), 'input.resolution must be one of "768P", "1080P"', id="resolution-bare"
        ),
        # Cross-field rules come after every field.
        pytest.param(
            body(duration="10", resolution="1080P"),
            "10 seconds videos are not supported for 1080P resolution",
            id="1080P-10s",
        ),
        pytest.param(
            body(duration=10, resolution="1080p"),
            "10 seconds videos are not supported for 1080P resolution",
            id="1080P-10s-normalised",
        ),
        pytest.param(
            body(duration="10", resolution="1080P", image_url="nope"),
            "input.image_url must be an absolute http or https URL",
            id="fields-before-rules",
        ),
        pytest.param(
            body(PRO, duration="10"),
            "10 seconds videos are not supported for 1080P resolution",
            id="pro-10s-at-default-1080P",
        ),
        pytest.param(
            body(prompt=None, duration="5"), "input.prompt is required", id="fields-in-schema-order"
        ),
        # Hailuo 02.
        pytest.param(
            body(I2V_02, prompt="x" * 1501),
            "input.prompt must be at most 1500 characters",
            id="02-prompt-1501",
        ),
        pytest.param(
            body(I2V_02, resolution="1080P"),
            'input.resolution must be one of "512P", "768P"',
            id="02-no-1080P",
        ),
        pytest.param(
            body(I2V_02, prompt_optimizer="true"),
            "input.prompt_optimizer must be true or false",
            id="02-optimizer-string",
        ),
        pytest.param(
            body(I2V_02, prompt_optimizer=1),
            "input.prompt_optimizer must be true or false",
            id="02-optimizer-int",
        ),
        pytest.param(
            body(I2V_02, end_image_url="nope"),
            "input.end_image_url must be an absolute http or https URL",
            id="02-end-image-url",
        ),
        pytest.param(
            body(T2V_02, prompt="x" * 1501),
            "input.prompt must be at most 1500 characters",
            id="t2v-prompt-1501",
        ),
        pytest.param(
            body(T2V_02, image_url=IMAGE),
            "input.image_url is not a field of hailuo/02-text-to-video-standard",
            id="t2v-refuses-image",
        ),
        pytest.param(
            body(T2V_02, resolution="768P"),
            "input.resolution is not a field of hailuo/02-text-to-video-standard",
            id="t2v-refuses-resolution",
        ),
    ],
)
def test_invalid_requests_are_refused_with_the_first_broken_rule(data: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(data)
    assert caught.value.code == 422
    assert caught.value.message == message


def test_the_key_order_of_the_body_does_not_change_the_answer() -> None:
    forward = {"model": STANDARD, "input": {"prompt": "a", "image_url": IMAGE, "zz": 1, "aa": 2}}
    backward = {"input": {"aa": 2, "zz": 1, "image_url": IMAGE, "prompt": "a"}, "model": STANDARD}
    messages = []
    for data in (forward, backward):
        with pytest.raises(InvalidInput) as caught:
            validate(data)
        messages.append(caught.value.message)
    assert messages == ["input.aa is not a field of hailuo/2-3-image-to-video-standard"] * 2


# --- Properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)

GOOD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.sampled_from(["a cat", "x" * 1500, "x" * 5000]),
    "image_url": st.just(IMAGE),
    "end_image_url": st.just(IMAGE),
    "prompt_optimizer": st.booleans(),
    "duration": st.sampled_from(["6", "10", 6, 10]),
    "resolution": st.sampled_from(["512P", "768P", "768p", "1080P"]),
}


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Bodies for a catalog model whose fields are mostly good, so that every rule is reached."""
    name = draw(st.sampled_from([*CATALOG.names, "hailuo/nope"]))
    spec = CATALOG.get(name)
    input_: dict[str, Any] = {}
    for key, good in GOOD_VALUES.items():
        wanted = spec is not None and spec.field(key) is not None
        kind = draw(st.sampled_from(["good"] * 6 + ["absent", "any"] if wanted else ["absent"] * 9 + ["any"]))
        if kind == "good":
            input_[key] = draw(good)
        elif kind == "any":
            input_[key] = draw(json_values)
    data: dict[str, Any] = {"model": name, "input": input_}
    callback = draw(st.sampled_from(["absent", "absent", "none", "good", "good", "any"]))
    if callback == "none":
        data["callBackUrl"] = None
    elif callback == "good":
        data["callBackUrl"] = "https://a.example/cb"
    elif callback == "any":
        data["callBackUrl"] = draw(json_values)
    return data


@given(json_values | near_valid_bodies())
def test_any_json_body_is_either_a_request_or_invalid_input(data: object) -> None:
    try:
        request = validate(data)
    except InvalidInput as caught:
        refusal: InvalidInput | None = caught
    else:
        refusal = None
    if refusal is not None:
        assert refusal.code == 422
        assert refusal.message
        return
    # A valid request re-validates to itself: normalising is idempotent.
    again = validate(
        {"model": request.model.name, "callBackUrl": request.callback_url, "input": request.input}
    )
    assert again == request
    assert (request.duration_s, request.resolution) in request.model.combinations()
    assert re.fullmatch(r"6|10", str(request.input["duration"]))
