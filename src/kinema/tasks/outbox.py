"""The callback outbox: a finished task's callback is written in the same transaction as its end.

Nothing is sent here or from a request; a deliverer (`kinema.webhooks.deliverer`) sends what is
due. If the process dies right after a task finishes, the row is already there.
"""

from __future__ import annotations

import secrets
from enum import StrEnum

from sqlalchemy import Connection, insert

from kinema.store.schema import callback_deliveries


class DeliveryState(StrEnum):
    PENDING = "pending"  #: Not delivered yet; retried until the retry window closes.
    DELIVERED = "delivered"  #: The receiver answered 2xx.
    FAILED = "failed"  #: The window closed without a 2xx; a redeliver call can start again.


def new_delivery_id() -> str:
    """A Standard Webhooks message id: receivers deduplicate on it."""
    return "msg_" + secrets.token_hex(16)


def enqueue_callback(connection: Connection, task_id: str, account_id: str, url: str, now: int) -> str:
    delivery_id = new_delivery_id()
    connection.execute(
        insert(callback_deliveries).values(
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
    return delivery_id
