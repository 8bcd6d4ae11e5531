"""The storage port: files addressed by a key, and the one rule for what a key may be.

A key is a relative POSIX path such as ``results/<account>/<task>/video.mp4``. Keys come from
users (``uploadPath``, ``fileName``) and from URLs, so `check_key` is the gate every store
passes a key through before it touches anything; a store must in addition make sure that
what the key finally names (after symlinks) lies inside its root.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final, Protocol

from kinema.domain.errors import InvalidInput

MAX_KEY_BYTES = 1024
"""Longest key, in UTF-8 bytes; a generous bound that still keeps paths well under PATH_MAX."""

MAX_SEGMENT_BYTES = 255
"""Longest segment, in UTF-8 bytes: NAME_MAX on the file systems we run on."""


class InvalidKey(InvalidInput, ValueError):
    """A key that is not a safe relative path, or that would lead outside the store."""


def check_key(key: str) -> str:
    """Return `key` unchanged if it is a safe relative path; raise `InvalidKey` otherwise.

    Refused: the empty key, absolute paths, empty, ``.`` and ``..`` segments, backslashes
    (a second separator on some systems), NUL and other control characters, lone surrogates
    (not encodable as a file name) and keys or segments too long for a file system. Segments
    that merely start with a dot (``.cache``) are allowed.
    """
    if not key:
        raise InvalidKey("the file path is empty")
    if key.startswith("/"):
        raise InvalidKey("the file path must be relative")
    if "\\" in key:
        raise InvalidKey("the file path must not contain backslashes")
    for char in key:
        category = unicodedata.category(char)
        if category == "Cc":
            raise InvalidKey("the file path must not contain control characters")
        if category == "Cs":
            raise InvalidKey("the file path is not valid Unicode")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"the file path is longer than {MAX_KEY_BYTES} bytes")
    for segment in key.split("/"):
        if not segment:
            raise InvalidKey("the file path has an empty segment")
        if segment in (".", ".."):
            raise InvalidKey("the file path must not contain '.' or '..' segments")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidKey(f"a file name is longer than {MAX_SEGMENT_BYTES} bytes")
    return key


MEDIA_TYPES: Final[Mapping[str, str]] = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}
"""Content types by extension; anything else is served as ``application/octet-stream``, which
together with ``nosniff`` keeps an uploaded page or script from running in our origin."""


def media_type(key: str) -> str:
    """The content type a stored file is served with, by its name."""
    return MEDIA_TYPES.get(PurePosixPath(key).suffix.lower(), "application/octet-stream")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What is known of a stored file without reading it."""

    size: int  #: In bytes.
    modified_ns: int  #: Last modification, nanoseconds since the Unix epoch.
    etag: str  #: A strong validator, quoted as HTTP wants it; changes whenever the content may have.

    @property
    def modified_at(self) -> float:
        """Last modification, seconds since the Unix epoch."""
        return self.modified_ns / 1_000_000_000


class BlobStore(Protocol):
    """Stored files addressed by key.

    Every method checks its key with `check_key` and raises `InvalidKey` for a bad one, also
    for a key that would resolve outside the store. Writes are atomic: a reader sees the old
    file or the new one, and a crash never leaves a partial file under a real key.
    """

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        """Store `data` under `key`, replacing what was there."""
        ...

    def put_file(self, key: str, source: Path) -> BlobInfo:
        """Move the finished local file `source` in under `key`; `source` is gone afterwards."""
        ...

    def put_files(self, files: Mapping[str, Path]) -> dict[str, BlobInfo]:
        """`put_file` for each key and its local file, at the cost of fewer round trips or disk
        flushes where the store can share them; every key is checked before anything moves."""
        ...

    def open_read(self, key: str) -> BinaryIO:
        """Open the file for reading (seekable); `FileNotFoundError` when there is none."""
        ...

    def stat(self, key: str) -> BlobInfo | None:
        """Describe the file, or None when there is none."""
        ...

    def delete(self, key: str) -> bool:
        """Delete the file; False when there was none."""
        ...

    def list_files(self, prefix: str) -> Iterator[tuple[str, BlobInfo]]:
        """Every stored file under the folder `prefix` (as `delete_prefix` takes it), with its
        key and what is known of it, in no particular order."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file under the folder `prefix` (a key, with or without a final ``/``).

        Returns how many files were deleted. The empty prefix is refused like any bad key, so
        that a slip can never empty the whole store.
        """
        ...

    def local_path(self, key: str) -> Path | None:
        """Where the file lives on this machine (whether or not it exists yet); None if remote."""
        ...

    def sweep_staging(self, now: float, older_than_s: float) -> int:
        """Delete what crashed producers left in staging, untouched for `older_than_s` seconds."""
        ...

    def staging(self) -> AbstractContextManager[Path]:
        """A fresh, empty local folder for a producer to write into before `put_file`.

        The folder and whatever is left in it are removed when the context ends; it is on the
        same file system as the store where that matters, so that `put_file` is a rename.
        """
        ...
