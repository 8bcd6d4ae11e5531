"""Statements on API keys. Keys are stored as hashes; the hot one finds a live key by its hash."""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Connection, Select, bindparam, insert, select, update

from kinema.domain.accounts import Caller, KeyRecord
from kinema.store.database import Database
from kinema.store.schema import accounts, api_keys

#: Built once: every API call runs it.
LIVE_KEY: Final = select(api_keys.c.id, api_keys.c.account_id).where(
    api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
_LISTED: Final = (
    select(api_keys, accounts.c.name.label("account_name"))
    .join(accounts, accounts.c.id == api_keys.c.account_id)
    .order_by(api_keys.c.created_at, api_keys.c.id)
)


def live_key(db: Database, key_hash: str) -> Caller | None:
    """The caller of a live key with this hash (`Database.first`: quick enough for the event loop)."""
    row = db.first(LIVE_KEY, {"key_hash": key_hash})
    return None if row is None else Caller(account_id=row["account_id"], key_id=row["id"])


def insert_key(
    connection: Connection, key_id: str, account_id: str, name: str, prefix: str, key_hash: str, now: int
) -> None:
    connection.execute(
        insert(api_keys).values(
            id=key_id, account_id=account_id, name=name, prefix=prefix, key_hash=key_hash, created_at=now
        )
    )


def list_keys(connection: Connection) -> list[KeyRecord]:
    return _records(connection, _LISTED)


def keys_by_hash(connection: Connection, key_hash: str) -> list[KeyRecord]:
    return _records(connection, _LISTED.where(api_keys.c.key_hash == key_hash))


def keys_by_id_or_prefix(connection: Connection, reference: str) -> list[KeyRecord]:
    matching = (api_keys.c.id == reference) | (api_keys.c.prefix == reference)
    return _records(connection, _LISTED.where(matching))


def revoke(connection: Connection, key_id: str, now: int) -> bool:
    """Revoke a key; False when it was already revoked (or there is none)."""
    result = connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount == 1


def account_exists(connection: Connection, account_id: str) -> bool:
    found = connection.execute(select(accounts.c.id).where(accounts.c.id == account_id)).scalar_one_or_none()
    return found is not None


def _records(connection: Connection, query: Select[Any]) -> list[KeyRecord]:
    return [
        KeyRecord(
            row.id, row.account_id, row.account_name, row.name, row.prefix, row.created_at, row.revoked_at
        )
        for row in connection.execute(query)
    ]
