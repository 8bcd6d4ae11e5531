"""``Idempotency-Key``: a retried createTask returns the first task and charges nothing.

A key is remembered for a day per account, with a hash of the request body; the same key with
another body is refused. The key's row is written in the same transaction as the task, so two
concurrent requests with one key make one task: the second waits on the first's row, then finds
it. The same mechanism on both databases: the key's row is inserted unless one exists, and a
request whose insert found one answers that row's task.
"""

from __future__ import annotations

import hashlib
import json

from kinema.domain.errors import InvalidInput
from kinema.store import idempotency as statements
from kinema.store.database import Connection, Database, Row

MAX_KEY_LENGTH = 255


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters")
    return key


def body_hash(body: object) -> str:
    """The same JSON value gives the same hash, however it was spaced or ordered."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def earlier_task(connection: Connection, account_id: str, key: str, digest: str, now: int) -> str | None:
    """The task an earlier request with this key made, if it is still remembered."""
    return _task_of(statements.earlier(connection, account_id, key, now), digest)


def earlier_task_now(db: Database, account_id: str, key: str, digest: str, now: int) -> str | None:
    """`earlier_task` as a read of its own (quick enough for the event loop)."""
    return _task_of(statements.earlier_now(db, account_id, key, now), digest)


def _task_of(row: Row | None, digest: str) -> str | None:
    if row is None:
        return None
    if row["body_hash"] != digest:
        raise InvalidInput("Idempotency-Key was already used with a different request body")
    return str(row["task_id"])


def remember(
    db: Database,
    connection: Connection,
    account_id: str,
    key: str,
    digest: str,
    task_id: str,
    now: int,
    ttl_ms: int,
) -> str | None:
    """Record the key for `task_id`: None when it was recorded, else the task a concurrent
    request with the same key made first (whose row this one waited for)."""
    if statements.claim_key(connection, db.dialect, account_id, key, digest, task_id, now, ttl_ms):
        return None
    earlier = earlier_task(connection, account_id, key, digest, now)
    assert earlier is not None  # the row that made the insert do nothing is live and committed
    return earlier
