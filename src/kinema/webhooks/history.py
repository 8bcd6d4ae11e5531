"""What a client can see of its callbacks, and asking for one again."""

from __future__ import annotations

from kinema.domain.callbacks import Attempt, Delivery
from kinema.domain.errors import InvalidInput
from kinema.domain.task import Task
from kinema.store import callbacks
from kinema.store.database import Connection
from kinema.store.dialects import serialise
from kinema.tasks.outbox import enqueue_callback

__all__ = ["Attempt", "Delivery", "deliveries_of", "redeliver"]


def deliveries_of(connection: Connection, task_id: str) -> list[Delivery]:
    return callbacks.deliveries_of(connection, task_id)


def redeliver(connection: Connection, task: Task, now: int) -> str:
    """Queue the task's callback once more (a new delivery with a new ``webhook-id``).

    One delivery of a task at a time: while one is pending (still to be delivered, or retried),
    asking again is refused, so that a redeliver never adds requests to the callback URL beyond
    the one delivery and its retries. (The account's redeliveries are rate-limited besides.)
    """
    if not task.callback_url:
        raise InvalidInput("the task has no callBackUrl")
    if not task.state.is_terminal:
        raise InvalidInput("the task has not finished; its callback is sent when it does")
    serialise(connection, f"kinema.redeliver:{task.id}")  # two asking at once: one gets in
    pending = callbacks.pending_of_task(connection, task.id)
    if pending is not None:
        raise InvalidInput(
            f"the task's callback {pending} is still pending; ask again once it is delivered or failed"
        )
    return enqueue_callback(connection, task.id, task.account_id, task.callback_url, now)
