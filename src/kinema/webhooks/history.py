"""What a client can see of its callbacks, and asking for one again."""

from __future__ import annotations

from kinema.domain.callbacks import Attempt, Delivery
from kinema.domain.errors import InvalidInput
from kinema.domain.task import Task
from kinema.store import callbacks
from kinema.store.database import Connection
from kinema.tasks.outbox import enqueue_callback

__all__ = ["Attempt", "Delivery", "deliveries_of", "redeliver"]


def deliveries_of(connection: Connection, task_id: str) -> list[Delivery]:
    return callbacks.deliveries_of(connection, task_id)


def redeliver(connection: Connection, task: Task, now: int) -> str:
    """Queue the task's callback once more (a new delivery with a new ``webhook-id``)."""
    if not task.callback_url:
        raise InvalidInput("the task has no callBackUrl")
    if not task.state.is_terminal:
        raise InvalidInput("the task has not finished; its callback is sent when it does")
    return enqueue_callback(connection, task.id, task.account_id, task.callback_url, now)
