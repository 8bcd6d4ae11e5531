"""What `/readyz` and `/metrics` read of the workers: who beat within a lease, and what is broken."""

from __future__ import annotations

from kinema.store import workers as statements
from kinema.store.database import Database


def live_workers(db: Database, now: int, lease_ms: int) -> int:
    with db.read() as connection:
        return statements.live_count(connection, now - lease_ms)


def served_models(db: Database, now: int, lease_ms: int) -> frozenset[str] | None:
    """The models a live worker takes; None when one takes every model."""
    with db.read() as connection:
        return statements.served_models(connection, now - lease_ms)


def degraded_engines(db: Database, now: int, lease_ms: int) -> list[str]:
    """Why live workers' engines cannot work (a refused upstream key, say), if any."""
    with db.read() as connection:
        return statements.degraded_reasons(connection, now - lease_ms)
