"""Statements on uploads: one row per stored file, by its key, until it expires."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from kinema.store.dialects import Row, upsert
from kinema.store.schema import uploads


def replace_upload(connection: Connection, **values: Any) -> None:
    """Record an upload; an earlier one at the same key is replaced, even one written at the same
    moment by another request."""
    upsert(connection, uploads, ["key"], values)


def upload_by_key(connection: Connection, key: str) -> Row | None:
    row = connection.execute(select(uploads).where(uploads.c.key == key)).mappings().first()
    return None if row is None else dict(row)


def expired_keys(connection: Connection, now: int, limit: int) -> list[str]:
    return list(
        connection.execute(select(uploads.c.key).where(uploads.c.expires_at <= now).limit(limit)).scalars()
    )


def delete_expired(connection: Connection, keys: Sequence[str], now: int) -> None:
    """Delete these uploads if they are still expired (a re-upload to the same path stays)."""
    connection.execute(delete(uploads).where(uploads.c.key.in_(keys), uploads.c.expires_at <= now))
