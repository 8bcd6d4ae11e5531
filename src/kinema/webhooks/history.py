"""What a client can see of its callbacks, and asking for one again."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from kinema.domain.errors import InvalidInput
from kinema.domain.task import Task
from kinema.store.schema import callback_attempts, callback_deliveries
from kinema.tasks.outbox import enqueue_callback


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    started_at: int
    status: int | None
    latency_ms: int
    error: str


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    url: str
    state: str
    attempts: list[Attempt]
    next_attempt_at: int | None
    created_at: int
    delivered_at: int | None


def deliveries_of(connection: Connection, task_id: str) -> list[Delivery]:
    rows = connection.execute(
        select(callback_deliveries)
        .where(callback_deliveries.c.task_id == task_id)
        .order_by(callback_deliveries.c.created_at, callback_deliveries.c.id)
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
        pending = row.state == "pending"
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


def redeliver(connection: Connection, task: Task, now: int) -> str:
    """Queue the task's callback once more (a new delivery with a new ``webhook-id``)."""
    if not task.callback_url:
        raise InvalidInput("the task has no callBackUrl")
    if not task.state.is_terminal:
        raise InvalidInput("the task has not finished; its callback is sent when it does")
    return enqueue_callback(connection, task.id, task.account_id, task.callback_url, now)
