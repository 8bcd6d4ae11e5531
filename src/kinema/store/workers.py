"""Statements on worker presence: each worker process's row, its last beat, and its engine's health."""

from __future__ import annotations

import json

from sqlalchemy import Connection, delete, func, insert, select, update

from kinema.store.schema import workers


def announce(
    connection: Connection,
    worker_id: str,
    hostname: str,
    pid: int,
    engine: str,
    now: int,
    models: frozenset[str] | None = None,
) -> None:
    """A worker's row, with the models it takes (None: every model)."""
    connection.execute(
        insert(workers).values(
            id=worker_id,
            hostname=hostname,
            pid=pid,
            engine=engine[:100],
            started_at=now,
            seen_at=now,
            models="" if models is None else json.dumps(sorted(models)),
        )
    )


def beat(connection: Connection, worker_id: str, now: int) -> None:
    connection.execute(update(workers).where(workers.c.id == worker_id).values(seen_at=now))


def set_degraded(connection: Connection, worker_id: str, reason: str) -> None:
    connection.execute(update(workers).where(workers.c.id == worker_id).values(degraded=reason))


def remove(connection: Connection, worker_id: str) -> None:
    connection.execute(delete(workers).where(workers.c.id == worker_id))


def live_count(connection: Connection, seen_since: int) -> int:
    return int(
        connection.execute(
            select(func.count()).select_from(workers).where(workers.c.seen_at >= seen_since)
        ).scalar_one()
    )


def served_models(connection: Connection, seen_since: int) -> frozenset[str] | None:
    """The models some live worker takes; None when one takes every model."""
    served: set[str] = set()
    for models in connection.execute(
        select(workers.c.models).where(workers.c.seen_at >= seen_since)
    ).scalars():
        if not models:
            return None
        served.update(json.loads(models))
    return frozenset(served)


def degraded_reasons(connection: Connection, seen_since: int) -> list[str]:
    """Why live workers' engines cannot work, each reason once."""
    reasons = connection.execute(
        select(workers.c.degraded).where(workers.c.seen_at >= seen_since, workers.c.degraded != "").distinct()
    ).scalars()
    return sorted(reasons)
