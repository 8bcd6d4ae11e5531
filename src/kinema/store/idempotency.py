"""Statements on remembered Idempotency-Keys: per account, the task a key made and its body's hash."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, bindparam, delete, select

from kinema.store.database import Database, Row, run
from kinema.store.dialects import Dialect
from kinema.store.schema import idempotency_keys

_table = idempotency_keys

EARLIER: Final = select(_table.c.task_id, _table.c.body_hash).where(
    _table.c.account_id == bindparam("account_id"),
    _table.c.key == bindparam("key"),
    _table.c.expires_at > bindparam("now"),
)
_FORGET_EXPIRED: Final = delete(_table).where(
    _table.c.account_id == bindparam("account_id"),
    _table.c.key == bindparam("key"),
    _table.c.expires_at <= bindparam("now"),
)


def earlier(connection: Connection, account_id: str, key: str, now: int) -> Row | None:
    """(task_id, body_hash) of the live key, read in `connection`'s transaction."""
    row = connection.execute(EARLIER, {"account_id": account_id, "key": key, "now": now}).mappings().first()
    return None if row is None else dict(row)


def earlier_now(db: Database, account_id: str, key: str, now: int) -> Row | None:
    """`earlier` as a read of its own (`Database.first`: quick enough for the event loop)."""
    return db.first(EARLIER, {"account_id": account_id, "key": key, "now": now})


def claim_key(
    connection: Connection,
    dialect: Dialect,
    account_id: str,
    key: str,
    digest: str,
    task_id: str,
    now: int,
    ttl_ms: int,
) -> bool:
    """Record the key for `task_id`, unless a live row for it exists already (False then).

    The same on both databases: a concurrent request with the same key waits on this row's
    insert (PostgreSQL's unique index, SQLite's write lock) and then inserts nothing.
    """
    run(connection, _FORGET_EXPIRED, {"account_id": account_id, "key": key, "now": now})
    inserted = connection.execute(
        dialect.insert_or_ignore(_table)
        .values(
            account_id=account_id,
            key=key,
            body_hash=digest,
            task_id=task_id,
            created_at=now,
            expires_at=now + ttl_ms,
        )
        .returning(_table.c.task_id)
    )
    return inserted.first() is not None


def delete_expired(connection: Connection, now: int) -> int:
    return connection.execute(delete(_table).where(_table.c.expires_at <= now)).rowcount
