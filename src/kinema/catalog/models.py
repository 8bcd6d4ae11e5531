"""The model catalog as data: each model's input fields, defaults and cross-field rules.

A model is described once here; request validation (`validation.py`), pricing (`pricing.py`)
and the `GET /api/v1/models` listing all read the same description, so adding a model is a
matter of adding a `ModelSpec`, never of writing code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from kinema.domain.video import Capability, Resolution

MAX_URL_LENGTH = 2048
"""The longest URL accepted anywhere in a request (image URLs, the callback URL)."""

FieldValue = str | bool
"""A value of a normalised input field: choices and text are strings, flags are booleans."""


class FieldKind(StrEnum):
    """What kind of value an input field holds, and so how it is checked."""

    TEXT = "text"  #: A non-blank string of at most `max_length` code points.
    CHOICE = "choice"  #: One of the field's `choices`, a string.
    FLAG = "flag"  #: A JSON boolean.
    URL = "url"  #: An absolute http or https URL with a host, at most `max_length` characters.


@dataclass(frozen=True, slots=True)
class InputField:
    """One field of a model's `input` object."""

    name: str
    kind: FieldKind
    description: str
    required: bool = False
    default: FieldValue | None = None  #: Filled in when the field is absent; None: left absent.
    choices: tuple[str, ...] = ()  #: The allowed values of a CHOICE field, in display order.
    max_length: int | None = None  #: For TEXT and URL fields, in Unicode code points.
    accepts_integers: bool = False  #: A CHOICE of digit strings also takes the JSON integer (6 -> "6").
    case_insensitive: bool = False  #: A CHOICE also takes any letter case ("768p" -> "768P").

    def __post_init__(self) -> None:
        if self.required and self.default is not None:
            raise ValueError(f"field {self.name}: a required field has no default")
        if self.kind is FieldKind.CHOICE:
            if not self.choices:
                raise ValueError(f"field {self.name}: a choice needs choices")
            if self.default is not None and self.default not in self.choices:
                raise ValueError(f"field {self.name}: default {self.default!r} is not one of its choices")
            if self.accepts_integers and not all(choice.isdigit() for choice in self.choices):
                raise ValueError(f"field {self.name}: only digit choices can accept integers")
        elif self.choices or self.accepts_integers or self.case_insensitive:
            raise ValueError(f"field {self.name}: only a choice has choices")
        if self.kind in (FieldKind.TEXT, FieldKind.URL):
            if self.max_length is None or self.max_length <= 0:
                raise ValueError(f"field {self.name}: text and URL fields need a positive max_length")
            if self.default is not None and not isinstance(self.default, str):
                raise ValueError(f"field {self.name}: the default must be a string")
        elif self.max_length is not None:
            raise ValueError(f"field {self.name}: only text and URL fields have a max_length")
        if self.kind is FieldKind.FLAG and self.default is not None and not isinstance(self.default, bool):
            raise ValueError(f"field {self.name}: the default of a flag must be a boolean")

    def json_schema(self) -> dict[str, object]:
        """This field as a JSON Schema property, in the shape of the published OpenAPI document."""
        schema: dict[str, object] = {"description": self.description}
        if self.kind is FieldKind.FLAG:
            schema["type"] = "boolean"
        else:
            schema["type"] = "string"
        if self.kind is FieldKind.URL:
            schema["format"] = "uri"
        if self.kind is FieldKind.CHOICE:
            schema["enum"] = list(self.choices)
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True, slots=True)
class ForbiddenCombination:
    """A cross-field rule: the input may not hold all of these (normalised) values at once.

    Checked after every field is valid and defaults are filled in, so a default counts: on a
    model whose resolution defaults to 1080P, asking only for 10 s is refused.
    """

    values: tuple[tuple[str, FieldValue], ...]  #: (field name, value) pairs that together are refused.
    message: str  #: The 422 message, meant for the API's user.

    def matches(self, values: Mapping[str, object]) -> bool:
        return all(name in values and values[name] == value for name, value in self.values)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model of the catalog: its name on the wire, what it needs from an engine, its input.

    Every model has a `duration` choice of whole seconds. Its output resolution is either the
    `resolution` choice of its input or, for a model without one, `output_resolution`.
    """

    name: str
    capability: Capability
    description: str
    fields: tuple[InputField, ...]
    rules: tuple[ForbiddenCombination, ...] = ()
    output_resolution: Resolution | None = None  #: For models whose input has no `resolution`.

    def __post_init__(self) -> None:
        names = [field.name for field in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name}: field names repeat")
        duration = self.field("duration")
        if duration is None or duration.kind is not FieldKind.CHOICE or not duration.accepts_integers:
            raise ValueError(f"model {self.name}: needs a duration choice of whole seconds")
        resolution = self.field("resolution")
        if (resolution is None) == (self.output_resolution is None):
            raise ValueError(
                f"model {self.name}: needs exactly one of a resolution field or output_resolution"
            )
        if resolution is not None:
            known = {member.value for member in Resolution}
            if resolution.kind is not FieldKind.CHOICE or not set(resolution.choices) <= known:
                raise ValueError(f"model {self.name}: resolution choices must be among {sorted(known)}")
        for rule in self.rules:
            for name, _ in rule.values:
                if name not in names:
                    raise ValueError(f"model {self.name}: a rule names the unknown field {name}")

    def field(self, name: str) -> InputField | None:
        """The input field called `name`, or None when the model has none."""
        for field in self.fields:
            if field.name == name:
                return field
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    @property
    def durations(self) -> tuple[int, ...]:
        """The durations offered, in seconds, in schema order."""
        duration = self.field("duration")
        assert duration is not None  # checked at construction
        return tuple(int(choice) for choice in duration.choices)

    @property
    def resolutions(self) -> tuple[Resolution, ...]:
        """The output resolutions offered, in schema order."""
        resolution = self.field("resolution")
        if resolution is None:
            assert self.output_resolution is not None  # checked at construction
            return (self.output_resolution,)
        return tuple(Resolution(choice) for choice in resolution.choices)

    def combinations(self) -> tuple[tuple[int, Resolution], ...]:
        """Every (duration in seconds, resolution) pair a request may ask for: what needs a price."""
        allowed: list[tuple[int, Resolution]] = []
        for duration in self.durations:
            for resolution in self.resolutions:
                values = {"duration": str(duration), "resolution": resolution.value}
                if not any(rule.matches(values) for rule in self.rules):
                    allowed.append((duration, resolution))
        return tuple(allowed)

    def json_schema(self) -> dict[str, object]:
        """The model's `input` object as a JSON Schema; cross-field rules under `x-rules`."""
        schema: dict[str, object] = {
            "title": self.name,
            "description": self.description,
            "type": "object",
            "properties": {field.name: field.json_schema() for field in self.fields},
            "required": [field.name for field in self.fields if field.required],
            "additionalProperties": False,
        }
        if self.rules:
            schema["x-rules"] = [
                {"forbidden": dict(rule.values), "message": rule.message} for rule in self.rules
            ]
        return schema


class Catalog:
    """The models this service offers, by name, in a fixed order."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models: dict[str, ModelSpec] = {}
        for model in models:
            if model.name in self._models:
                raise ValueError(f"model {model.name} is in the catalog twice")
            self._models[model.name] = model

    def get(self, name: str) -> ModelSpec | None:
        """The model called `name`, or None when the catalog has no such model."""
        return self._models.get(name)

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._models)

    def json_schema(self, model: ModelSpec | str) -> dict[str, object]:
        """The JSON Schema of a model's input; KeyError for a name the catalog lacks."""
        spec = self._models[model] if isinstance(model, str) else model
        return spec.json_schema()


# The fields the Hailuo models share. Descriptions follow the published OpenAPI document.


def _prompt(max_length: int) -> InputField:
    return InputField(
        name="prompt",
        kind=FieldKind.TEXT,
        description=f"Text prompt describing the desired video (Max length: {max_length} characters)",
        required=True,
        max_length=max_length,
    )


_IMAGE_URL = InputField(
    name="image_url",
    kind=FieldKind.URL,
    description=(
        "Input image to animate (File URL after upload, not file content; "
        "Accepted types: image/jpeg, image/png, image/webp; Max size: 10.0MB)"
    ),
    required=True,
    max_length=MAX_URL_LENGTH,
)

_END_IMAGE_URL = InputField(
    name="end_image_url",
    kind=FieldKind.URL,
    description=(
        "Optional image the video should end on (File URL after upload; "
        "Accepted types: image/jpeg, image/png, image/webp; Max size: 10.0MB)"
    ),
    max_length=MAX_URL_LENGTH,
)

_PROMPT_OPTIMIZER = InputField(
    name="prompt_optimizer",
    kind=FieldKind.FLAG,
    description="Whether to let the model rewrite the prompt for better results.",
    default=True,
)


def _duration(default: str, note: str = "") -> InputField:
    return InputField(
        name="duration",
        kind=FieldKind.CHOICE,
        description=f"The duration of the video in seconds.{note}",
        default=default,
        choices=("6", "10"),
        accepts_integers=True,
    )


def _resolution(choices: tuple[Resolution, ...], default: Resolution) -> InputField:
    return InputField(
        name="resolution",
        kind=FieldKind.CHOICE,
        description="The resolution of the generated video.",
        default=default.value,
        choices=tuple(choice.value for choice in choices),
        case_insensitive=True,
    )


_NO_10S_AT_1080P = ForbiddenCombination(
    values=(("duration", "10"), ("resolution", Resolution.P1080.value)),
    message="10 seconds videos are not supported for 1080P resolution",
)
_NOTE_1080P = " 10 seconds videos are not supported for 1080P resolution."

HAILUO_23_STANDARD = ModelSpec(
    name="hailuo/2-3-image-to-video-standard",
    capability=Capability.IMAGE_TO_VIDEO,
    description="Hailuo 2.3 standard: animates an image, guided by a prompt, at 768P or 1080P.",
    fields=(
        _prompt(5000),
        _IMAGE_URL,
        _duration("6", _NOTE_1080P),
        _resolution((Resolution.P768, Resolution.P1080), Resolution.P768),
    ),
    rules=(_NO_10S_AT_1080P,),
)

HAILUO_23_PRO = ModelSpec(
    name="hailuo/2-3-image-to-video-pro",
    capability=Capability.IMAGE_TO_VIDEO,
    description="Hailuo 2.3 pro: animates an image, guided by a prompt; 1080P by default.",
    fields=(
        _prompt(5000),
        _IMAGE_URL,
        _duration("6", _NOTE_1080P),
        _resolution((Resolution.P768, Resolution.P1080), Resolution.P1080),
    ),
    rules=(_NO_10S_AT_1080P,),
)

# Hailuo 02 offers 10 s at 512P and at 768P (only its 1080P tier, not offered here, is
# limited to 6 s), so this model has no cross-field rule.
HAILUO_02_IMAGE_STANDARD = ModelSpec(
    name="hailuo/02-image-to-video-standard",
    capability=Capability.IMAGE_TO_VIDEO,
    description="Hailuo 02 standard: animates an image, optionally towards an end image, at 512P or 768P.",
    fields=(
        _prompt(1500),
        _IMAGE_URL,
        _END_IMAGE_URL,
        _PROMPT_OPTIMIZER,
        _duration("10"),
        _resolution((Resolution.P512, Resolution.P768), Resolution.P768),
    ),
)

HAILUO_02_TEXT_STANDARD = ModelSpec(
    name="hailuo/02-text-to-video-standard",
    capability=Capability.TEXT_TO_VIDEO,
    description="Hailuo 02 standard: makes a 768P video from the prompt alone.",
    fields=(
        _prompt(1500),
        _PROMPT_OPTIMIZER,
        _duration("6"),
    ),
    output_resolution=Resolution.P768,
)

DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    HAILUO_23_STANDARD,
    HAILUO_23_PRO,
    HAILUO_02_IMAGE_STANDARD,
    HAILUO_02_TEXT_STANDARD,
)


def default_catalog() -> Catalog:
    """The catalog Kinema offers: the seed's model first, then the other Hailuo models."""
    return Catalog(DEFAULT_MODELS)
