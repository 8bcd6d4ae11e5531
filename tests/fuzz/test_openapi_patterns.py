"""The patterns /openapi.json gives for request text say what the rules themselves accept.

Read as a JSON Schema validator reads them (ECMAScript's regular expressions), on text made of
the characters the rules treat apart (separators, dots, whitespace, control characters) and on
any text at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jsonschema_rs
from hypothesis import given, settings
from hypothesis import strategies as st

from kinema.api import openapi_patterns
from kinema.catalog import default_catalog, validate_create_task
from kinema.domain.errors import InvalidInput
from kinema.files import uploads

#: What the rules look at, and a few characters they do not.
TELLING = st.sampled_from([*"a0./\\ \t\n\x00\x1f\x7f\x85\xa0\u2000\u3000é:@?#", "\U0001f600"])
TEXTS = st.one_of(st.text(TELLING, max_size=10), st.text(max_size=10))


@functools.cache
def matches(pattern: str) -> Callable[[str], bool]:
    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid  # type: ignore[no-any-return]


def accepted(rule: Callable[[str], object], value: str) -> bool:
    try:
        rule(value)
    except InvalidInput:
        return False
    return True


def _prompt(value: str) -> object:
    body = {"model": "hailuo/02-text-to-video-standard", "input": {"prompt": value}}
    return validate_create_task(body, default_catalog())


def _image_url(value: str) -> object:
    body = {"model": "hailuo/2-3-image-to-video-standard", "input": {"prompt": "x", "image_url": value}}
    return validate_create_task(body, default_catalog())


@settings(max_examples=3000, deadline=None)
@given(TEXTS)
def test_upload_path_and_file_name(value: str) -> None:
    assert matches(openapi_patterns.UPLOAD_PATH)(value) == accepted(uploads.clean_upload_path, value)
    name_taken = accepted(lambda name: uploads.clean_file_name(name, "image/png"), value)
    assert matches(openapi_patterns.FILE_NAME)(value) == name_taken


@settings(max_examples=1000, deadline=None)
@given(TEXTS)
def test_prompt(value: str) -> None:
    assert matches(openapi_patterns.TEXT)(value) == accepted(_prompt, value)


@settings(max_examples=1000, deadline=None)
@given(st.builds("".join, st.tuples(st.sampled_from(["http://", "https://"]), TEXTS)))
def test_a_web_url_the_pattern_takes_is_taken(value: str) -> None:
    # One way only: the rules also read hosts the pattern leaves aside (non-ASCII names, say).
    if matches(openapi_patterns.WEB_URL)(value):
        assert accepted(_image_url, value), value
