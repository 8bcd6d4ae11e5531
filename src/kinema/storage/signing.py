"""Signed, expiring links to stored files.

A link is ``{base}/files/{key}?expires=<unix seconds>&signature=<sig>``, where ``sig`` is the
HMAC-SHA256, under the server's secret, of a canonical message naming the link's version, its
expiry and its key, in base64url without padding. Whoever holds a link can fetch that one file
until it expires, and cannot turn it into a link to another file or a later expiry. The secret
never leaves the server. Time is always passed in, never read here.

Where the files live in a bucket that serves them itself, the links handed out are the bucket's
presigned URLs instead (`BucketLinks`): the same keys and expiries, checked by the bucket.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import math
import re
from typing import Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

from kinema.storage.base import InvalidKey, check_key

MIN_SECRET_BYTES = 16

_MESSAGE_PREFIX = b"kinema-file-link-v1\n"
"""Names the scheme, so that a MAC made for something else with the same secret never fits."""

_EXPIRES = re.compile(r"0|[1-9][0-9]{0,15}")
"""Canonical decimal only: one expiry has one spelling, so a link cannot be varied and still
verify; 16 digits is far beyond any real date and keeps the number small."""

_DEFAULT_PORTS = {"http": 80, "https": 443}

EXPIRY_STEP_S = 60
"""Links expire on whole minutes (see `link_expiry`)."""


def link_expiry(now_s: float, lasting_s: float) -> int:
    """When a link made at `now_s` to last `lasting_s` seconds expires: the next whole minute
    after ``now_s + lasting_s``. Every answer within a minute carries the same links, so they
    are signed once (see `LinkSigner.signed_url`) and answers stay the same between changes."""
    return math.ceil((now_s + lasting_s) / EXPIRY_STEP_S) * EXPIRY_STEP_S


class LinkCheck(enum.Enum):
    """What a link's query says about it."""

    VALID = "valid"  #: Made by this server for this key and not yet expired.
    TAMPERED = "tampered"  #: Signature missing, malformed or not this server's for this key and expiry.
    EXPIRED = "expired"  #: Made by this server, but its time is up.


class BucketLinks(Protocol):
    """Links that a bucket serves itself (S3's presigned URLs), handed out in place of ours."""

    def presigned_url(self, key: str, expires_at: int) -> str:
        """A link to `key` that the bucket honours until `expires_at` (Unix seconds)."""
        ...

    def key_of(self, url: str) -> str | None:
        """The key a link of the bucket names (its signature unchecked); None for other URLs."""
        ...

    def read_link(self, url: str) -> tuple[LinkCheck, bytes | None]:
        """What the bucket answers to the link: the bytes, None for a file that is gone."""
        ...


class LinkSigner:
    """Signs and checks links with one secret; hands out `bucket_links`' links when given."""

    __slots__ = ("_secret", "_urls", "bucket_links")

    def __init__(self, secret: bytes, bucket_links: BucketLinks | None = None) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._urls = functools.lru_cache(maxsize=4096)(self._make_url)
        #: The bucket that serves the files itself, if it does. This server's own links stay
        #: valid all the same (`verify`), for those handed out before.
        self.bucket_links = bucket_links

    def __repr__(self) -> str:
        return "LinkSigner(<secret>)"

    def sign(self, key: str, expires_at: int) -> str:
        """The query string (without ``?``) that makes a link to `key` valid until `expires_at`."""
        if expires_at < 0:
            raise ValueError("expires_at must be a Unix time in seconds")
        # Both values are URL-safe as they are: digits, and base64url without padding.
        return f"expires={expires_at}&signature={self._signature(key, expires_at)}"

    def signed_url(self, public_base_url: str, key: str, expires_at: int) -> str:
        """The absolute link to `key`, valid until `expires_at` (Unix seconds).

        Links are remembered (the latest few thousand): a task polled many times a second has
        its links signed once per expiry (see `link_expiry`). With `bucket_links`, the link is
        the bucket's.
        """
        return self._urls(public_base_url, key, expires_at)

    def _make_url(self, public_base_url: str, key: str, expires_at: int) -> str:
        check_key(key)
        if self.bucket_links is not None:
            return self.bucket_links.presigned_url(key, expires_at)
        path = quote(key, safe="/")
        return f"{public_base_url.rstrip('/')}/files/{path}?{self.sign(key, expires_at)}"

    def verify(self, key: str, expires: str | int | None, signature: str | None, now: int) -> LinkCheck:
        """Check a link's `expires` and `signature` (as found in its query) for `key` at `now`.

        Expiry is judged only once the signature is known to be ours, so that a forged link
        never learns anything from the answer.
        """
        expires_at = self._authentic_expiry(key, expires, signature)
        if expires_at is None:
            return LinkCheck.TAMPERED
        if now >= expires_at:
            return LinkCheck.EXPIRED
        return LinkCheck.VALID

    def issued_key(self, url: str, public_base_url: str) -> str | None:
        """The key of a link that this server signed, expired or not; None for any other URL.

        For re-signing a result URL (``/api/v1/common/download-url``): it proves the server
        once handed out this exact key, so a caller cannot mint a link to a key of their own
        choosing. Whether the key belongs to the caller's account is still the caller's check.
        A link of `bucket_links` names its key too, but only the bucket can check its signature:
        there, the caller's check is the only one.
        """
        key = key_from_url(url, public_base_url)
        if key is None:
            return None if self.bucket_links is None else self.bucket_links.key_of(url)
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        expires = query.get("expires", [])
        signature = query.get("signature", [])
        if len(expires) != 1 or len(signature) != 1:
            return None
        if self._authentic_expiry(key, expires[0], signature[0]) is None:
            return None
        return key

    def _authentic_expiry(self, key: str, expires: str | int | None, signature: str | None) -> int | None:
        """The expiry, if `signature` is this server's for `key` and `expires`; else None."""
        if expires is None or signature is None:
            return None
        if isinstance(expires, str):
            if not _EXPIRES.fullmatch(expires):
                return None
            expires = int(expires)
        if expires < 0:
            return None
        expected = self._signature(key, expires).encode("ascii")
        # The received text may hold anything; compare bytes so that non-ASCII cannot raise.
        if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass")):
            return None
        return expires

    def _signature(self, key: str, expires_at: int) -> str:
        # The expiry is a plain number and comes first, so the message splits one way only,
        # whatever the key holds.
        message = (
            _MESSAGE_PREFIX + str(expires_at).encode("ascii") + b"\n" + key.encode("utf-8", "surrogatepass")
        )
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def key_from_url(url: str, public_base_url: str) -> str | None:
    """The key a file link of this server names; None for a URL that is not one.

    Only the scheme, host, port and path are compared; the signature is not checked here (see
    `LinkSigner.issued_key` for that).
    """
    try:
        target = urlsplit(url)
        base = urlsplit(public_base_url.rstrip("/"))
        if _origin(target.scheme, target.hostname, target.port) != _origin(
            base.scheme, base.hostname, base.port
        ):
            return None
    except ValueError:  # a malformed URL or port
        return None
    if target.username is not None or target.password is not None:
        return None
    prefix = f"{base.path}/files/"
    if not target.path.startswith(prefix):
        return None
    try:
        key = unquote(target.path.removeprefix(prefix), errors="strict")
        return check_key(key)
    except (UnicodeDecodeError, InvalidKey):
        return None


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str | None, int | None]:
    scheme = scheme.lower()
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)
