"""Uploads: checked by content, kept in the uploading account's own space, expiring.

An upload's key is ``uploads/<account>/<uploadPath>/<fileName>``: the account comes from the
key that authenticated the call, never from the request, so no path a user writes can reach
another account's files. Uploading to the same path again replaces the file.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from kinema.domain.errors import InvalidInput
from kinema.media.types import EXTENSIONS, sniff_type
from kinema.storage import layout
from kinema.storage.base import BlobStore, InvalidKey, check_key
from kinema.store import uploads as statements
from kinema.store.database import Database

MAX_UPLOAD_PATH = 512
MAX_FILE_NAME = 200


@dataclass(frozen=True, slots=True)
class UploadRules:
    max_bytes: int
    allowed_types: frozenset[str]


@dataclass(frozen=True, slots=True)
class Upload:
    """A stored upload, as the upload answer describes it."""

    key: str
    account_id: str
    file_name: str
    file_path: str  #: ``<uploadPath>/<fileName>``, as the user named it.
    size: int
    mime_type: str
    created_at: int
    expires_at: int

    @property
    def uploaded_at(self) -> str:
        """ISO 8601 in UTC with milliseconds, as the published answer shows it."""
        moment = datetime.fromtimestamp(self.created_at / 1000, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def account_prefix(account_id: str) -> str:
    return layout.upload_prefix(account_id)


def clean_upload_path(upload_path: object) -> str:
    """The folder a user chose, checked: relative, no ``..``, no odd characters."""
    if upload_path is None or upload_path == "":
        raise InvalidInput("uploadPath is required")
    if not isinstance(upload_path, str):
        raise InvalidInput("uploadPath must be a string")
    cleaned = upload_path.strip().rstrip("/")  # "images/" names the folder "images"
    if len(cleaned) > MAX_UPLOAD_PATH:
        raise InvalidInput(f"uploadPath must be at most {MAX_UPLOAD_PATH} characters")
    try:
        return check_key(cleaned)
    except InvalidKey as error:
        raise InvalidInput(f"uploadPath {_rule(error)}") from error


def clean_file_name(file_name: object, mime_type: str) -> str:
    """The name a user chose (one path segment), or a random one with the type's extension."""
    if file_name is None or file_name == "":
        return secrets.token_hex(8) + EXTENSIONS.get(mime_type, "")
    if not isinstance(file_name, str):
        raise InvalidInput("fileName must be a string")
    if len(file_name) > MAX_FILE_NAME:
        raise InvalidInput(f"fileName must be at most {MAX_FILE_NAME} characters")
    if "/" in file_name:
        raise InvalidInput("fileName must be a name, not a path")
    try:
        return check_key(file_name)
    except InvalidKey as error:
        raise InvalidInput(f"fileName {_rule(error)}") from error


def check_content(data: bytes, rules: UploadRules) -> str:
    """The content's MIME type, if it is allowed and small enough."""
    if not data:
        raise InvalidInput("the file is empty")
    if len(data) > rules.max_bytes:
        raise InvalidInput(f"the file is larger than {_megabytes(rules.max_bytes)}")
    mime_type = sniff_type(data)
    allowed = ", ".join(sorted(rules.allowed_types))
    if mime_type is None:
        raise InvalidInput(f"the file's type is not recognised; allowed types: {allowed}")
    if mime_type not in rules.allowed_types:
        raise InvalidInput(f"files of type {mime_type} are not accepted; allowed types: {allowed}")
    return mime_type


def save_upload(
    db: Database,
    store: BlobStore,
    account_id: str,
    *,
    upload_path: object,
    file_name: object,
    data: bytes,
    rules: UploadRules,
    now: int,
    retention_ms: int,
) -> Upload:
    """Check and store an upload; the same path again replaces the file."""
    folder = clean_upload_path(upload_path)
    mime_type = check_content(data, rules)
    name = clean_file_name(file_name, mime_type)
    file_path = f"{folder}/{name}"
    key = layout.upload_key(account_id, file_path)
    try:
        check_key(key)
    except InvalidKey as error:
        raise InvalidInput(f"uploadPath with fileName {_rule(error)}") from error
    upload = Upload(key, account_id, name, file_path, len(data), mime_type, now, now + retention_ms)
    # The row goes first: a crash before the file is stored leaves a row that retention deletes
    # in time, never a file that no row knows and nothing would ever delete.
    with db.write() as connection:
        statements.replace_upload(
            connection,
            key=key,
            account_id=account_id,
            file_path=file_path,
            size=upload.size,
            mime_type=mime_type,
            created_at=now,
            expires_at=upload.expires_at,
        )
    store.put_bytes(key, data)
    return upload


def find_upload(db: Database, key: str) -> Upload | None:
    with db.read() as connection:
        row = statements.upload_by_key(connection, key)
    if row is None:
        return None
    return Upload(
        row["key"],
        row["account_id"],
        row["file_path"].rsplit("/", 1)[-1],
        row["file_path"],
        int(row["size"]),
        row["mime_type"],
        int(row["created_at"]),
        int(row["expires_at"]),
    )


def _rule(error: InvalidKey) -> str:
    return error.message.removeprefix("the file path ").removeprefix("a file name ")


def _megabytes(byte_count: int) -> str:
    return f"{byte_count / (1024 * 1024):g} MB"
