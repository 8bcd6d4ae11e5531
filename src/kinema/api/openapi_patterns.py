"""The rules on request text, as the JSON Schema patterns ``/openapi.json`` gives them.

Each pattern says what its rule's own code accepts (`kinema.catalog.validation` for URLs and
the prompt, `kinema.files.uploads` for upload paths and file names), so that a client, or a
fuzzer, reading the document sends what the service takes. They are written for both regular
expression dialects a reader may use (ECMAScript's, which JSON Schema names, and Python's):
explicit ``\\uXXXX`` classes, no ``\\s`` (the two differ on it), no lookaround.

Two limits of the rules are beyond a pattern and are given in words instead: a path segment
holds at most 255 bytes of UTF-8, and a whole path at most 1024. (JSON Schema strings are
Unicode text, which never holds the unpaired surrogates the rules also refuse.)
"""

from __future__ import annotations

from typing import Final

#: Control characters (Unicode category Cc): no path, name or URL holds one.
_CONTROL: Final = r"\u0000-\u001f\u007f-\u009f"
#: The whitespace that is not a control character, as Python's ``str.strip`` removes it.
_SPACE: Final = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: All that ``str.strip`` removes: `_SPACE` and the control characters that are whitespace.
_STRIPPED: Final = rf"[\t-\r\u001c-\u001f\u0085{_SPACE}]"

#: A character of a path segment: anything but the separators and control characters.
_IN_SEGMENT: Final = rf"[^/\\{_CONTROL}]"
#: The same, but not whitespace (what a path that is stripped begins and ends with).
_SOLID: Final = rf"[^/\\{_CONTROL}{_SPACE}]"
#: A segment may start with a dot, but is neither ``.`` nor ``..``.
_SEGMENT: Final = rf"(?:[^./\\{_CONTROL}]{_IN_SEGMENT}*|\.[^./\\{_CONTROL}]{_IN_SEGMENT}*|\.\.{_IN_SEGMENT}+)"
#: A segment that begins with a character other than whitespace.
_FIRST: Final = (
    rf"(?:[^./\\{_CONTROL}{_SPACE}]{_IN_SEGMENT}*|\.[^./\\{_CONTROL}]{_IN_SEGMENT}*|\.\.{_IN_SEGMENT}+)"
)
#: A segment that ends with a character other than whitespace.
_LAST: Final = (
    rf"(?:[^./\\{_CONTROL}{_SPACE}]|[^./\\{_CONTROL}]{_IN_SEGMENT}*{_SOLID}"
    rf"|\.[^./\\{_CONTROL}{_SPACE}]|\.[^./\\{_CONTROL}]{_IN_SEGMENT}*{_SOLID}|\.\.{_IN_SEGMENT}*{_SOLID})"
)
#: One segment that both begins and ends with a character other than whitespace.
_ONLY: Final = (
    rf"(?:[^./\\{_CONTROL}{_SPACE}]|[^./\\{_CONTROL}{_SPACE}]{_IN_SEGMENT}*{_SOLID}"
    rf"|\.[^./\\{_CONTROL}{_SPACE}]|\.[^./\\{_CONTROL}]{_IN_SEGMENT}*{_SOLID}|\.\.{_IN_SEGMENT}*{_SOLID})"
)

UPLOAD_PATH: Final = (
    # Whitespace around it is stripped, then slashes at its end; what is left is a relative path.
    rf"^{_STRIPPED}*(?:"
    rf"{_FIRST}(?:/{_SEGMENT})*/+{_STRIPPED}*"  # ending with slashes: its last segment is any
    rf"|{_ONLY}{_STRIPPED}*"
    rf"|{_FIRST}(?:/{_SEGMENT})*/{_LAST}{_STRIPPED}*"
    r")$"
)
"""``uploadPath``: a relative folder (``images/2026``), segments neither ``.`` nor ``..``."""

FILE_NAME: Final = rf"^(?:{_SEGMENT})?$"
"""``fileName``: one path segment, or empty for a name of the server's choosing."""

#: A printable ASCII character other than the space.
_VISIBLE: Final = r"[\u0021-\u007e]"
#: A host name: labels of at most 63 characters, the last one beginning with a letter (a last
#: label in digits makes a numeric address, which the rules read too but this leaves aside).
_HOST: Final = r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z][A-Za-z0-9_-]{0,62}\.?"
_PORT: Final = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
WEB_URL: Final = rf"^https?://{_HOST}(?::{_PORT})?(?:[/?#]{_VISIBLE}*)?$"
"""A web URL as createTask and the uploads take it: http or https, a host name and a port, no
user name or password, nothing but printable ASCII (a client writes other characters
percent-encoded). Its host's addresses are checked when it is fetched, not here. The rules also
take what this leaves aside: addresses, non-ASCII names, names of more than 253 characters."""

TEXT: Final = r"^[^\u0000]*[^\u0000\t-\r\u001c-\u001f\u0085" + _SPACE + r"][^\u0000]*$"
"""A prompt: not blank (something besides whitespace), and no NUL."""
