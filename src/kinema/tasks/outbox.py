"""The callback outbox: a finished task's callback is written in the same transaction as its end.

Nothing is sent here or from a request; a deliverer (`kinema.webhooks.deliverer`) sends what is
due. If the process dies right after a task finishes, the row is already there.
"""

from __future__ import annotations

import secrets

from kinema.domain.callbacks import DeliveryState
from kinema.store import callbacks
from kinema.store.database import Connection

__all__ = ["DeliveryState", "enqueue_callback", "new_delivery_id"]


def new_delivery_id() -> str:
    """A Standard Webhooks message id: receivers deduplicate on it."""
    return "msg_" + secrets.token_hex(16)


def enqueue_callback(connection: Connection, task_id: str, account_id: str, url: str, now: int) -> str:
    delivery_id = new_delivery_id()
    callbacks.insert_delivery(connection, delivery_id, task_id, account_id, url, now)
    return delivery_id
