"""URLs that point at this server, read straight from storage instead of over HTTP.

A task's ``image_url`` is often a link this server gave out (an upload, an earlier result, or
a bundled sample). Reading it locally needs no network round trip, works when the server's
public address is not reachable from itself, and is not an SSRF risk: only files this server
signed, or its own samples, can be reached this way. Where the bucket serves the files itself
(presigned links), its links count as this server's too: they are read through the bucket,
which checks them, at the bucket's own address.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from kinema.domain.errors import InvalidInput
from kinema.storage.base import BlobStore
from kinema.storage.signing import LinkCheck, LinkSigner, key_from_url

SAMPLES_PATH: Final = "/samples/"


def sample_names() -> list[str]:
    return sorted(
        entry.name for entry in resources.files("kinema.assets").iterdir() if entry.name.endswith(".jpg")
    )


def read_sample(name: str) -> bytes | None:
    if name not in sample_names():
        return None
    return resources.files("kinema.assets").joinpath(name).read_bytes()


class OwnFiles:
    """Resolves this server's own URLs to their bytes."""

    def __init__(
        self, public_url: str, store: BlobStore, signer: LinkSigner, clock_s: Callable[[], int]
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.store = store
        self.signer = signer
        self.clock_s = clock_s

    def is_own(self, url: str) -> bool:
        """Whether `url` points at this server or its bucket (whether or not at something it holds)."""
        return url.startswith(self.public_url + "/") or self._bucket_link(url)

    def read(self, url: str, field: str) -> bytes | None:
        """The bytes behind `url` if it is one of ours; None for any other URL."""
        if self._bucket_link(url):
            return self._read_bucket_link(url, field)
        if not self.is_own(url):
            return None
        path = urlsplit(url).path.removeprefix(urlsplit(self.public_url).path)
        if path.startswith(SAMPLES_PATH):
            data = read_sample(unquote(path.removeprefix(SAMPLES_PATH)))
            if data is None:
                raise InvalidInput(f"{field} names a sample this server does not have")
            return data
        key = key_from_url(url, self.public_url)
        if key is None:
            raise InvalidInput(f"{field} points at this server but not at a file it holds")
        query = parse_qs(urlsplit(url).query)
        check = self.signer.verify(
            key, _single(query, "expires"), _single(query, "signature"), now=self.clock_s()
        )
        _refuse(check, field)
        if self.store.stat(key) is None:
            raise InvalidInput(f"{field} is a link to a file that no longer exists")
        with self.store.open_read(key) as source:
            return source.read()

    def _bucket_link(self, url: str) -> bool:
        links = self.signer.bucket_links
        return links is not None and links.key_of(url) is not None

    def _read_bucket_link(self, url: str, field: str) -> bytes:
        assert self.signer.bucket_links is not None
        check, data = self.signer.bucket_links.read_link(url)
        _refuse(check, field)
        if data is None:
            raise InvalidInput(f"{field} is a link to a file that no longer exists")
        return data


def _refuse(check: LinkCheck, field: str) -> None:
    if check is LinkCheck.TAMPERED:
        raise InvalidInput(f"{field} is a link to this server that is not valid")
    if check is LinkCheck.EXPIRED:
        raise InvalidInput(f"{field} is a link to this server that has expired")


def _single(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name, [])
    return values[0] if len(values) == 1 else None
