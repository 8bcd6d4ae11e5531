"""``Idempotency-Key``: a retried createTask returns the first task and charges nothing.

A key is remembered for a day per account, with a hash of the request body; the same key with
another body is refused. The key's row is written in the same transaction as the task, so two
concurrent requests with one key make one task: the second waits on the first's row, then finds
it (on PostgreSQL the unique key makes it fail, and the caller looks again).
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

from sqlalchemy import Connection, bindparam, delete, insert, select

from kinema.domain.errors import InvalidInput
from kinema.store.database import Database, Row
from kinema.store.schema import idempotency_keys

MAX_KEY_LENGTH = 255


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters")
    return key


def body_hash(body: object) -> str:
    """The same JSON value gives the same hash, however it was spaced or ordered."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_EARLIER: Final = select(idempotency_keys.c.task_id, idempotency_keys.c.body_hash).where(
    idempotency_keys.c.account_id == bindparam("account_id"),
    idempotency_keys.c.key == bindparam("key"),
    idempotency_keys.c.expires_at > bindparam("now"),
)


def earlier_task(connection: Connection, account_id: str, key: str, digest: str, now: int) -> str | None:
    """The task an earlier request with this key made, if it is still remembered."""
    params = {"account_id": account_id, "key": key, "now": now}
    return _task_of(connection.execute(_EARLIER, params).mappings().first(), digest)


def earlier_task_now(db: Database, account_id: str, key: str, digest: str, now: int) -> str | None:
    """`earlier_task` as a read of its own (`Database.first`: quick enough for the event loop)."""
    return _task_of(db.first(_EARLIER, {"account_id": account_id, "key": key, "now": now}), digest)


def _task_of(row: Row | None, digest: str) -> str | None:
    if row is None:
        return None
    if row["body_hash"] != digest:
        raise InvalidInput("Idempotency-Key was already used with a different request body")
    return str(row["task_id"])


def remember(
    connection: Connection, account_id: str, key: str, digest: str, task_id: str, now: int, ttl_ms: int
) -> None:
    """Record the key for `task_id`; raises IntegrityError if a concurrent request got there first."""
    connection.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.expires_at <= now,
        )
    )
    connection.execute(
        insert(idempotency_keys).values(
            account_id=account_id,
            key=key,
            body_hash=digest,
            task_id=task_id,
            created_at=now,
            expires_at=now + ttl_ms,
        )
    )
