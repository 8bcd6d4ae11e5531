"""A task's callback deliveries, with every attempt, and asking for one again (Kinema extensions)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from kinema.api.auth import CallerDep, ServicesDep
from kinema.api.envelope import ok
from kinema.api.routes.jobs import TASK_ID_PARAMETER, BadRequest, TaskReference, known_task_id
from kinema.domain.errors import TaskNotFound
from kinema.tasks import lifecycle
from kinema.webhooks import history

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.get(
    "/callbacks",
    summary="The callback deliveries of a task and their attempts",
    openapi_extra={"parameters": [TASK_ID_PARAMETER]},
)
def callbacks(
    found: ServicesDep,
    who: CallerDep,
    # Documented as TASK_ID_PARAMETER (required); read as optional, so its absence answers 400.
    task_id: Annotated[str | None, Query(alias="taskId", include_in_schema=False)] = None,
) -> dict[str, Any]:
    if not task_id:
        raise BadRequest("taskId parameter is required")
    known_task_id(task_id)
    with found.db.read() as connection:
        task = lifecycle.get_task(connection, task_id, who.account_id)
        if task is None:
            raise TaskNotFound()
        deliveries = history.deliveries_of(connection, task_id)
    return ok(
        {
            "taskId": task_id,
            "callBackUrl": task.callback_url or "",
            "deliveries": [
                {
                    "webhookId": delivery.id,
                    "url": delivery.url,
                    "state": delivery.state,
                    "createTime": delivery.created_at,
                    "deliveredTime": delivery.delivered_at,
                    "nextAttemptTime": delivery.next_attempt_at,
                    "attempts": [
                        {
                            "number": attempt.number,
                            "time": attempt.started_at,
                            "status": attempt.status,
                            "latencyMs": attempt.latency_ms,
                            "error": attempt.error,
                        }
                        for attempt in delivery.attempts
                    ],
                }
                for delivery in deliveries
            ],
        }
    )


@router.post("/callbacks/redeliver", summary="Send a finished task's callback again")
def redeliver(found: ServicesDep, who: CallerDep, body: TaskReference) -> dict[str, Any]:
    task_id = known_task_id(body.taskId)
    found.limits.hit(found.limits.redeliver, "redeliver", who.account_id)
    with found.db.write() as connection:
        task = lifecycle.get_task(connection, task_id, who.account_id)
        if task is None:
            raise TaskNotFound()
        delivery_id = history.redeliver(connection, task, found.clock())
    found.deliverer_wake()
    return ok({"webhookId": delivery_id})
