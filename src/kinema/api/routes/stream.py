"""The live stream of a task's state and progress, as Server-Sent Events (a Kinema extension)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from kinema.api.auth import CallerDep, ServicesDep, bearer_key_hash
from kinema.api.routes.jobs import TASK_ID_PARAMETER, BadRequest, at_cap, known_task_id, record_of
from kinema.api.services import Services
from kinema.domain.errors import TaskNotFound, Unauthorized
from kinema.domain.task import TaskState
from kinema.tasks import lifecycle

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

STREAM_POLL_S = 0.25
STREAM_KEEPALIVE_S = 15.0


def _streamed_task(
    found: ServicesDep,
    _who: CallerDep,
    # Documented as TASK_ID_PARAMETER (required); read as optional, so its absence answers 400.
    task_id: Annotated[str | None, Query(alias="taskId", include_in_schema=False)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """The task to stream, checked before the stream starts (errors come as the usual envelope)."""
    if not task_id:
        raise BadRequest("taskId parameter is required")
    record = _polled(found, bearer_key_hash(authorization), known_task_id(task_id))
    if record is _REVOKED:  # revoked since the key was checked a moment ago
        raise Unauthorized()
    if record is None:
        raise TaskNotFound()
    return record


@router.get(
    "/stream",
    summary="Live state and progress of a task (Server-Sent Events)",
    response_class=EventSourceResponse,
    openapi_extra={"parameters": [TASK_ID_PARAMETER]},
)
async def stream(
    found: ServicesDep,
    record: Annotated[dict[str, Any], Depends(_streamed_task)],
    authorization: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """One ``state`` event each time the state or progress changes, then a ``record`` event with
    the whole recordInfo data once the task has ended, and the stream closes. If the key is
    revoked meanwhile, an ``error`` event (code 401) ends the stream."""
    task_id = record["taskId"]
    key_hash = bearer_key_hash(authorization)
    last: tuple[str, int] | None = None
    quiet_s = 0.0
    while True:
        seen = (record["state"], record["progress"])
        if seen != last:
            last = seen
            quiet_s = 0.0
            yield ServerSentEvent(
                event="state", data={"taskId": task_id, "state": seen[0], "progress": seen[1]}
            )
        if record["state"] in (TaskState.SUCCESS.value, TaskState.FAIL.value):
            yield ServerSentEvent(event="record", data=record)
            return
        if quiet_s >= STREAM_KEEPALIVE_S:
            quiet_s = 0.0
            yield ServerSentEvent(comment="keep-alive")
        await asyncio.sleep(STREAM_POLL_S)
        quiet_s += STREAM_POLL_S
        current = await found.read_quickly(_polled, found, key_hash, task_id)
        if current is _REVOKED:
            yield ServerSentEvent(
                event="error", data={"code": Unauthorized.code, "msg": Unauthorized().message}
            )
            return
        if current is None:  # deleted under us (retention)
            return
        record = current


_REVOKED: Final[dict[str, Any]] = {}


def _polled(found: Services, key_hash: str, task_id: str) -> dict[str, Any] | None:
    """The task's record as its key may see it now: `_REVOKED` once the key no longer works,
    None once the task is gone. Fast reads only (they run on the event loop for SQLite)."""
    polled = lifecycle.poll_task(found.db, key_hash, task_id)
    if polled is None:
        return _REVOKED
    who, task = polled
    if task is None:
        return None
    held = task.state is TaskState.QUEUING and at_cap(found, lifecycle.running_now(found.db, who.account_id))
    return record_of(found, task, held=held)
