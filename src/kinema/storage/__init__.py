"""Stored files: the port (`base`), the local store (`local`) and signed links (`signing`)."""

from __future__ import annotations

from kinema.storage.base import BlobInfo, BlobStore, InvalidKey, check_key
from kinema.storage.local import LocalBlobStore
from kinema.storage.signing import LinkCheck, LinkSigner, key_from_url

__all__ = [
    "BlobInfo",
    "BlobStore",
    "InvalidKey",
    "LinkCheck",
    "LinkSigner",
    "LocalBlobStore",
    "check_key",
    "key_from_url",
]
