"""Checking a createTask body against the catalog, and the normalised request it becomes.

The first broken rule is reported, in a fixed order, because the envelope has one `msg`:
the body's shape, `model`, unknown top-level keys, `callBackUrl`, `input`, unknown input
keys (sorted), each input field in schema order, then the model's cross-field rules.

Choices made where the contract is silent:

- `null` means absent, for `callBackUrl` and for every input field: an optional field takes
  its default, a required one is reported as required.
- `duration` takes the JSON integers 6 and 10 as well as the strings; never booleans, floats
  (`6.0` included) or other spellings (`"6.0"`, `" 6"`).
- `resolution` takes any letter case (`"1080p"`, as the published description spells it) and
  is normalised to the catalog's spelling (`"1080P"`).
- The prompt is kept as sent (not trimmed), but may not be blank and may not hold NUL or an
  unpaired surrogate, which no database or encoder downstream can store.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from kinema.catalog.models import MAX_URL_LENGTH, Catalog, FieldKind, FieldValue, InputField, ModelSpec
from kinema.domain.errors import InvalidInput
from kinema.domain.video import Resolution
from kinema.net.addresses import check_url_syntax

UNSUPPORTED_MODEL = "The model name you specified is not supported"
"""The published service's message for a model name it does not know."""

TOP_LEVEL_KEYS = ("model", "callBackUrl", "input")

_SHOWN_KEY_LENGTH = 64


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A valid createTask request: the model, where to call back, and the input with defaults."""

    model: ModelSpec
    input: dict[str, FieldValue] = field(hash=False)  #: Normalised; defaults filled in.
    callback_url: str | None = None

    def _string(self, name: str) -> str | None:
        value = self.input.get(name)
        return value if isinstance(value, str) else None

    @property
    def prompt(self) -> str:
        return self._string("prompt") or ""

    @property
    def image_url(self) -> str | None:
        """The image to animate; None for a text-to-video model."""
        return self._string("image_url")

    @property
    def end_image_url(self) -> str | None:
        return self._string("end_image_url")

    @property
    def duration_s(self) -> int:
        return int(self._string("duration") or self.model.durations[0])

    @property
    def resolution(self) -> Resolution:
        """The output resolution: asked for, or fixed by a model that offers no choice."""
        value = self._string("resolution")
        return Resolution(value) if value is not None else self.model.resolutions[0]

    @property
    def prompt_optimizer(self) -> bool | None:
        """None for a model without the option: the engine decides."""
        value = self.input.get("prompt_optimizer")
        return value if isinstance(value, bool) else None


def validate_create_task(body: object, catalog: Catalog) -> TaskRequest:
    """Check a decoded JSON body; the normalised request, or InvalidInput with the first broken rule."""
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object")

    name = body.get("model")
    if name is None:
        raise InvalidInput("model is required")
    if not isinstance(name, str):
        raise InvalidInput("model must be a string")
    model = catalog.get(name)
    if model is None:
        raise InvalidInput(UNSUPPORTED_MODEL)

    for key in _sorted_keys(body):
        if key not in TOP_LEVEL_KEYS:
            raise InvalidInput(f"{_show_key(key)} is not a field of the createTask request")

    callback_url = body.get("callBackUrl")
    if callback_url is not None:
        callback_url = _check_url("callBackUrl", callback_url, MAX_URL_LENGTH)

    raw_input = body.get("input")
    if raw_input is None:
        raise InvalidInput("input is required")
    if not isinstance(raw_input, dict):
        raise InvalidInput("input must be an object")

    for key in _sorted_keys(raw_input):
        if not isinstance(key, str) or model.field(key) is None:
            raise InvalidInput(f"input.{_show_key(key)} is not a field of {model.name}")

    normalised: dict[str, FieldValue] = {}
    for spec in model.fields:
        value = _check_field(spec, raw_input.get(spec.name))
        if value is not None:
            normalised[spec.name] = value

    for rule in model.rules:
        if rule.matches(normalised):
            raise InvalidInput(rule.message)

    return TaskRequest(model=model, input=normalised, callback_url=callback_url)


def _check_field(spec: InputField, value: object) -> FieldValue | None:
    """The field's normalised value (its default when absent), or InvalidInput."""
    label = f"input.{spec.name}"
    if value is None:
        if spec.required:
            raise InvalidInput(f"{label} is required")
        return spec.default
    if spec.kind is FieldKind.TEXT:
        return _check_text(label, value, spec.max_length or 0)
    if spec.kind is FieldKind.URL:
        return _check_url(label, value, spec.max_length or MAX_URL_LENGTH)
    if spec.kind is FieldKind.FLAG:
        if not isinstance(value, bool):
            raise InvalidInput(f"{label} must be true or false")
        return value
    return _check_choice(label, spec, value)


def _check_text(label: str, value: object, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{label} must be a string")
    if not value.strip():
        raise InvalidInput(f"{label} must not be blank")
    if len(value) > max_length:
        raise InvalidInput(f"{label} must be at most {max_length} characters")
    if "\x00" in value or _has_surrogate(value):
        raise InvalidInput(f"{label} must not contain NUL characters or unpaired surrogates")
    return value


def _check_url(label: str, value: object, max_length: int) -> str:
    """An absolute http(s) URL with a host, no whitespace or control characters, within the length,
    that the fetcher could reach: its form passes the address rules (`kinema.net.addresses`),
    whose host lookup and address checks come when it is fetched."""
    if not isinstance(value, str):
        raise InvalidInput(f"{label} must be a string")
    if len(value) > max_length:
        raise InvalidInput(f"{label} must be at most {max_length} characters")
    if "\x00" in value:
        raise InvalidInput(f"{label} must not contain NUL characters")
    if not _is_web_url(value):
        raise InvalidInput(f"{label} must be an absolute http or https URL")
    check_url_syntax(value, field=label)
    return value


_WHITESPACE = re.compile(r"\s")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _is_web_url(value: str) -> bool:
    # Unprintable covers control characters and unpaired surrogates.
    if not value.isprintable() or _WHITESPACE.search(value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _check_choice(label: str, spec: InputField, value: object) -> str:
    if isinstance(value, str):
        if value in spec.choices:
            return value
        if spec.case_insensitive:
            for choice in spec.choices:
                if value.casefold() == choice.casefold():
                    return choice
    # bool is an int in Python but not in JSON; compare as integers so that a huge number
    # is never turned into a string.
    elif spec.accepts_integers and isinstance(value, int) and not isinstance(value, bool):
        for choice in spec.choices:
            if value == int(choice):
                return choice
    allowed = ", ".join(f'"{choice}"' for choice in spec.choices)
    raise InvalidInput(f"{label} must be one of {allowed}")


def _has_surrogate(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def _sorted_keys(mapping: dict[object, object]) -> list[object]:
    """Keys in an order that does not depend on how the client ordered them."""
    return sorted(
        mapping, key=lambda key: (not isinstance(key, str), str(key) if isinstance(key, str) else "")
    )


def _show_key(key: object) -> str:
    """A key as it can safely appear in a message: plain when short and printable, else quoted."""
    if isinstance(key, str) and len(key) <= _SHOWN_KEY_LENGTH and key.isprintable() and key.strip() == key:
        return key if key else '""'
    text = key if isinstance(key, str) else repr(key)
    shown = json.dumps(text[:_SHOWN_KEY_LENGTH])
    return shown if len(text) <= _SHOWN_KEY_LENGTH else f"{shown}..."
