"""Reading a JSON request body the one way the contract gives: ``application/json`` in UTF-8.

A body sent as ``text/plain``, form-encoded, without a ``Content-Type`` or in UTF-16 is not
guessed at: it is refused with words that say what to send, so that a client's mistake shows at
once instead of as a task that means something else.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Final

from kinema.domain.errors import InvalidInput

JSON_TYPE: Final = "application/json"
_UTF8: Final = frozenset({"utf-8", "utf8"})
_SHOWN: Final = 60


def check_json_type(content_type: str | None) -> None:
    """Refuse a ``Content-Type`` other than ``application/json`` (with no charset, or UTF-8)."""
    if content_type is None or not content_type.strip():
        raise InvalidInput(f"Content-Type must be {JSON_TYPE} (the request has none)")
    media_type, *parameters = content_type.split(";")
    if media_type.strip().lower() != JSON_TYPE:
        raise InvalidInput(f"Content-Type must be {JSON_TYPE}, not {_shown(media_type.strip())}")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in _UTF8:
            raise InvalidInput(f"the request body must be JSON in UTF-8, not charset={_shown(value.strip())}")


def parse_json(raw: bytes) -> object:
    """The JSON value of a UTF-8 body, or InvalidInput that says what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the request body is not valid UTF-8 (at byte {error.start})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput("the request body must be a JSON object") from error
    except ValueError as error:  # an integer longer than Python reads (sys.get_int_max_str_digits)
        raise InvalidInput(_too_long_number(text)) from error


def _too_long_number(text: str) -> str:
    limit = sys.get_int_max_str_digits()
    found = re.search(rf"\d{{{limit + 1},}}", text)
    digits = found.group() if found else ""
    return (
        f"the request body holds a number of {len(digits)} digits ({digits[:12]}...); "
        f"numbers may have at most {limit} digits"
    )


def _shown(value: str) -> str:
    """A header's value as a message may quote it: printable, and cut short."""
    shown = "".join(char if char.isprintable() else "?" for char in value[:_SHOWN])
    return (shown or '""') + ("..." if len(value) > _SHOWN else "")
