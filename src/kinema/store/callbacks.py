"""Statements on the callback outbox: deliveries, their leases, and the attempts made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from kinema.domain.callbacks import Attempt, ClaimedDelivery, Delivery, DeliveryState
from kinema.store.database import Database
from kinema.store.dialects import Dialect
from kinema.store.schema import callback_attempts, callback_deliveries

_table = callback_deliveries

DUE: Final = (
    select(_table.c.id)
    .where(
        _table.c.state == DeliveryState.PENDING.value,
        _table.c.next_attempt_at <= bindparam("now"),
        _table.c.lease_owner.is_(None) | (_table.c.lease_expires_at <= bindparam("now")),
    )
    .limit(1)
)


def any_due(db: Database, now: int) -> bool:
    """Whether a delivery is due now (a read, quick enough to ask before claiming one)."""
    return db.first(DUE, {"now": now}) is not None


def insert_delivery(
    connection: Connection, delivery_id: str, task_id: str, account_id: str, url: str, now: int
) -> None:
    connection.execute(
        insert(_table).values(
            id=delivery_id,
            task_id=task_id,
            account_id=account_id,
            url=url,
            state=DeliveryState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def claim_due(
    connection: Connection, dialect: Dialect, owner: str, now: int, lease_ms: int
) -> ClaimedDelivery | None:
    """Lease the delivery due first for one attempt, or None when none is due."""
    query = (
        select(_table.c.id)
        .where(
            _table.c.state == DeliveryState.PENDING.value,
            _table.c.next_attempt_at <= now,
            _table.c.lease_owner.is_(None) | (_table.c.lease_expires_at <= now),
        )
        .order_by(_table.c.next_attempt_at, _table.c.id)
        .limit(1)
    )
    delivery_id = connection.execute(dialect.lock_rows(query, _table)).scalar_one_or_none()
    if delivery_id is None:
        return None
    row = connection.execute(
        update(_table)
        .where(_table.c.id == delivery_id)
        .values(attempts=_table.c.attempts + 1, lease_owner=owner, lease_expires_at=now + lease_ms)
        .returning(
            _table.c.id,
            _table.c.task_id,
            _table.c.account_id,
            _table.c.url,
            _table.c.attempts,
            _table.c.created_at,
        )
    ).one()
    return ClaimedDelivery(
        row.id, row.task_id, row.account_id, row.url, int(row.attempts), int(row.created_at)
    )


def record_attempt(
    connection: Connection,
    claimed: ClaimedDelivery,
    owner: str,
    values: Mapping[str, Any],
    attempt: Attempt,
) -> bool:
    """End the claimed attempt with `values` and log it; False when the lease was lost meanwhile."""
    updated = connection.execute(
        update(_table)
        .where(_table.c.id == claimed.id, _table.c.attempts == claimed.attempt, _table.c.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, **values)
    )
    if updated.rowcount != 1:
        return False
    connection.execute(
        insert(callback_attempts).values(
            delivery_id=claimed.id,
            number=attempt.number,
            started_at=attempt.started_at,
            status=attempt.status,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
        )
    )
    return True


def deliveries_of(connection: Connection, task_id: str) -> list[Delivery]:
    rows = connection.execute(
        select(_table).where(_table.c.task_id == task_id).order_by(_table.c.created_at, _table.c.id)
    ).all()
    found: list[Delivery] = []
    for row in rows:
        attempts = [
            Attempt(a.number, a.started_at, a.status, a.latency_ms, a.error)
            for a in connection.execute(
                select(callback_attempts)
                .where(callback_attempts.c.delivery_id == row.id)
                .order_by(callback_attempts.c.number)
            )
        ]
        pending = row.state == DeliveryState.PENDING.value
        found.append(
            Delivery(
                row.id,
                row.url,
                row.state,
                attempts,
                row.next_attempt_at if pending else None,
                row.created_at,
                row.delivered_at,
            )
        )
    return found


def pending_of_task(connection: Connection, task_id: str) -> str | None:
    """The id of a delivery of the task still to be made (or being made), if there is one."""
    query = (
        select(_table.c.id)
        .where(_table.c.task_id == task_id, _table.c.state == DeliveryState.PENDING.value)
        .order_by(_table.c.created_at, _table.c.id)
        .limit(1)
    )
    found: str | None = connection.execute(query).scalar_one_or_none()
    return found


def delete_of_tasks(connection: Connection, task_ids: Sequence[str]) -> None:
    """Every delivery of these tasks, with its attempts (retention)."""
    deliveries = select(_table.c.id).where(_table.c.task_id.in_(task_ids))
    connection.execute(delete(callback_attempts).where(callback_attempts.c.delivery_id.in_(deliveries)))
    connection.execute(delete(_table).where(_table.c.task_id.in_(task_ids)))
