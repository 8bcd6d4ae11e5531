"""The market-jobs routes: createTask, recordInfo, and the list and cancel extensions."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from kinema.accounts.keys import Caller, authenticate
from kinema.api.auth import CallerDep, ServicesDep
from kinema.api.envelope import ok
from kinema.api.services import Services
from kinema.catalog import TaskRequest, validate_create_task
from kinema.domain.errors import FeatureDisabled, InvalidInput, KinemaError, Maintenance
from kinema.domain.task import Task, TaskState
from kinema.engines.base import EngineInfo
from kinema.media.intake import check_image
from kinema.media.types import EXTENSIONS
from kinema.storage.signing import link_expiry
from kinema.tasks import idempotency, lifecycle
from kinema.tasks.lifecycle import NewTask
from kinema.tasks.records import task_record
from kinema.webhooks import history

log = logging.getLogger("kinema.tasks")
router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

MAX_BODY_BYTES = 64 * 1024
RECORD_NOT_FOUND = "recordInfo is null"


class BadRequest(KinemaError):
    """A request that cannot be read at all (the published service answers 400 here)."""

    code = 400


async def create_task(request: Request) -> Response:
    """Validate, price and queue a task; its price is reserved from the balance at once."""
    # A hot route: it reads its own parameters, checks the request on the event loop (no I/O
    # there), and sends its one write transaction to the app's writer.
    found: Services = request.app.state.services
    raw = await request.body()
    who = await found.read_quickly(authenticate, found.db, request.headers.get("authorization"))
    if found.settings.maintenance:
        raise Maintenance()
    await found.limits.hit_soon(found.limits.create_task, "create", who.account_id)
    order = _order(found, raw, request.headers.get("idempotency-key"))
    if order.key is not None:
        earlier = await found.read_quickly(_earlier_task, found, who, order)
        if earlier is not None:
            return JSONResponse(ok({"taskId": earlier}))
    image_url = order.request.image_url
    if image_url is None:
        new = replace(order.new, ready=True)
    elif found.own_files.is_own(image_url):
        new = await run_in_threadpool(_with_own_input, found, who, image_url, order.new)
    else:
        new = order.new
    try:
        made = await found.writer.write(partial(_insert_task, found, who, order, new))
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key made the task first.
        await _forget_input(found, new)
        earlier = None if order.key is None else await found.read_quickly(_earlier_task, found, who, order)
        if earlier is None:
            raise
        return JSONResponse(ok({"taskId": earlier}))
    except Exception:
        await _forget_input(found, new)
        raise
    if isinstance(made, str):  # the task an earlier request with this Idempotency-Key made
        await _forget_input(found, new)
        return JSONResponse(ok({"taskId": made}))
    log.info(
        "task %s %s model=%s price=%d account=%s",
        made.id,
        made.state.value,
        made.model,
        made.price,
        who.account_id,
    )
    found.wakeup.notify()
    return JSONResponse(ok({"taskId": made.id}))


@dataclass(frozen=True, slots=True)
class _Order:
    """A createTask request that passed every check, ready to be written."""

    request: TaskRequest
    new: NewTask
    key: str | None  #: The Idempotency-Key
    digest: str  #: The body's hash, when there is a key


def _order(found: Services, raw: bytes, idempotency_key: str | None) -> _Order:
    """The checks of a createTask body, in the order the contract gives (none needs I/O)."""
    body = _parse_body(raw)
    request = validate_create_task(body, found.catalog)
    if not _can_serve(found.engine_for(request.model.name), request):
        raise FeatureDisabled()
    key = idempotency.check_key(idempotency_key) if idempotency_key is not None else None
    new = NewTask(
        model=request.model.name,
        param=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        input=request.input,
        callback_url=request.callback_url,
        price=found.prices.price(request),
    )
    return _Order(request, new, key, "" if key is None else idempotency.body_hash(body))


def _earlier_task(found: Services, who: Caller, order: _Order) -> str | None:
    assert order.key is not None
    return idempotency.earlier_task_now(found.db, who.account_id, order.key, order.digest, found.clock())


def _insert_task(
    found: Services, who: Caller, order: _Order, new: NewTask, connection: Connection
) -> Task | str:
    """The task written (its price reserved), or the id of the task its Idempotency-Key made."""
    now = found.clock()
    if order.key is not None:
        earlier = idempotency.earlier_task(connection, who.account_id, order.key, order.digest, now)
        if earlier is not None:
            return earlier
        ttl_ms = round(found.settings.idempotency_hours * 3600 * 1000)
        idempotency.remember(connection, who.account_id, order.key, order.digest, new.id, now, ttl_ms)
    timeout_ms = round(found.settings.task_timeout_seconds * 1000)
    return lifecycle.create_task(connection, who.account_id, new, now, timeout_ms)


def _can_serve(engine: EngineInfo, request: TaskRequest) -> bool:
    return (
        request.model.capability in engine.capabilities
        and request.resolution in engine.resolutions
        and request.duration_s in engine.durations
    )


def _with_own_input(found: Services, who: Caller, image_url: str, new: NewTask) -> NewTask:
    """A task whose image is on this server: checked right now, and copied as the task's input.

    A bad image is refused here, with 422 and no charge; a good one is copied to the task's
    own input, so that replacing or expiring the upload cannot change the task, and the task
    starts queued with nothing to fetch.
    """
    data = found.own_files.read(image_url, "input.image_url")
    if data is None:
        return new
    try:
        mime_type = check_image(data)
    except InvalidInput as error:
        raise InvalidInput(f"input.image_url: {error.message}") from error
    input_key = f"inputs/{who.account_id}/{new.id}/image{EXTENSIONS.get(mime_type, '')}"
    found.store.put_bytes(input_key, data)
    return replace(new, ready=True, input_key=input_key)


async def _forget_input(found: Services, new: NewTask) -> None:
    if new.input_key is not None:
        await run_in_threadpool(found.store.delete, new.input_key)


def _parse_body(raw: bytes) -> object:
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"the request body is larger than {MAX_BODY_BYTES // 1024} KB")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput("the request body must be a JSON object") from error


async def record_info(request: Request) -> Response:
    # The route clients poll: it reads its own parameters rather than have FastAPI resolve
    # them, and finds the caller and the task in one read, on the event loop where that is quick.
    found: Services = request.app.state.services
    task_id = request.query_params.get("taskId")
    who, task = await found.read_quickly(
        lifecycle.poll_task, found.db, request.headers.get("authorization"), task_id or ""
    )
    await found.limits.hit_soon(found.limits.record_info, "poll", who.key_id)
    if not task_id:
        raise BadRequest("taskId parameter is required")
    if task is None:
        raise InvalidInput(RECORD_NOT_FOUND)
    held = False
    if task.state is TaskState.QUEUING:
        held = _at_cap(found, await found.read_quickly(lifecycle.running_now, found.db, who.account_id))
    return JSONResponse(ok(_record(found, task, held=held)))


class PlainRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns a `Response` itself.

    For the two routes clients call most: FastAPI matches and documents them (parameters in
    ``openapi_extra``), but resolves no parameters and encodes no answer per request, which
    costs more than the work behind recordInfo.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


_AUTHORIZATION = {"name": "authorization", "in": "header", "required": False, "schema": {"type": "string"}}


def add_hot_routes(app: FastAPI) -> None:
    """createTask and recordInfo, on the app itself and ahead of every other route: the first
    routes matched, without an included router's second pass."""
    app.router.add_api_route(
        f"{router.prefix}/createTask",
        create_task,
        methods=["POST"],
        summary="Create a generation task",
        tags=["jobs"],
        route_class_override=PlainRoute,
        openapi_extra={
            "parameters": [
                _AUTHORIZATION,
                {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}},
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        },
    )
    app.router.add_api_route(
        f"{router.prefix}/recordInfo",
        record_info,
        methods=["GET"],
        summary="Get a task's state and result",
        tags=["jobs"],
        route_class_override=PlainRoute,
        openapi_extra={
            "parameters": [
                {"name": "taskId", "in": "query", "required": True, "schema": {"type": "string"}},
                _AUTHORIZATION,
            ]
        },
    )


@router.get("/list", summary="List your tasks, newest first")
def list_tasks(
    found: ServicesDep,
    who: CallerDep,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query()] = None,
    state: Annotated[TaskState | None, Query()] = None,
) -> dict[str, Any]:
    before = _read_cursor(cursor) if cursor else None
    with found.db.read() as connection:
        page = lifecycle.list_tasks(
            connection, who.account_id, limit=page_size + 1, before=before, state=state
        )
        held = any(task.state is TaskState.QUEUING for task in page) and _at_cap(
            found, lifecycle.running_count(connection, who.account_id)
        )
    more = len(page) > page_size
    page = page[:page_size]
    next_cursor = _write_cursor(page[-1]) if more else None
    return ok({"tasks": [_record(found, task, held=held) for task in page], "nextCursor": next_cursor})


class TaskReference(BaseModel):
    taskId: str  # noqa: N815 - the wire's name


@router.post("/cancel", summary="Cancel a task")
def cancel(found: ServicesDep, who: CallerDep, body: TaskReference) -> dict[str, Any]:
    """A task not yet running fails at once with code 499 and is refunded; a running one stops
    at the engine's next frame."""
    task = lifecycle.cancel_task(found.db, who.account_id, body.taskId, found.clock())
    if task.state is TaskState.FAIL:
        log.info("task %s fail 499: canceled by the owner", task.id)
        found.deliverer_wake()
    else:
        found.cancels.cancel(task.id)
    return ok(_record(found, task))


def _record(found: Services, task: Task, *, held: bool = False) -> dict[str, Any]:
    expires_at = link_expiry(found.now_s(), found.settings.result_link_seconds)
    return task_record(task, found.signer, found.settings.public_url, expires_at, held=held)


def _at_cap(found: Services, running: int) -> bool:
    """Whether an account running `running` tasks has its queued ones wait for them to finish."""
    return running >= found.settings.max_running_per_account


def _write_cursor(task: Task) -> str:
    return base64.urlsafe_b64encode(f"{task.created_at}:{task.id}".encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[int, str]:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, task_id = decoded.split(":", 1)
        return int(created_at), task_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise InvalidInput("cursor is not one this server gave out") from error


STREAM_POLL_S = 0.25
STREAM_KEEPALIVE_S = 15.0


def _streamed_task(
    found: ServicesDep, who: CallerDep, task_id: Annotated[str | None, Query(alias="taskId")] = None
) -> dict[str, Any]:
    """The task to stream, checked before the stream starts (errors come as the usual envelope)."""
    if not task_id:
        raise BadRequest("taskId parameter is required")
    record = _current(found, who, task_id)
    if record is None:
        raise InvalidInput(RECORD_NOT_FOUND)
    return record


@router.get(
    "/stream",
    summary="Live state and progress of a task (Server-Sent Events)",
    response_class=EventSourceResponse,
)
async def stream(
    found: ServicesDep, who: CallerDep, record: Annotated[dict[str, Any], Depends(_streamed_task)]
) -> AsyncIterator[ServerSentEvent]:
    """One ``state`` event each time the state or progress changes, then a ``record`` event with
    the whole recordInfo data once the task has ended, and the stream closes."""
    task_id = record["taskId"]
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
        current = await run_in_threadpool(_current, found, who, task_id)
        if current is None:  # deleted under us (retention)
            return
        record = current


def _current(found: Services, who: Caller, task_id: str) -> dict[str, Any] | None:
    with found.db.read() as connection:
        task = lifecycle.get_task(connection, task_id, who.account_id)
        held = (
            task is not None
            and task.state is TaskState.QUEUING
            and _at_cap(found, lifecycle.running_count(connection, who.account_id))
        )
    return None if task is None else _record(found, task, held=held)


@router.get("/callbacks", summary="The callback deliveries of a task and their attempts")
def callbacks(
    found: ServicesDep, who: CallerDep, task_id: Annotated[str | None, Query(alias="taskId")] = None
) -> dict[str, Any]:
    if not task_id:
        raise BadRequest("taskId parameter is required")
    with found.db.read() as connection:
        task = lifecycle.get_task(connection, task_id, who.account_id)
        if task is None:
            raise InvalidInput(RECORD_NOT_FOUND)
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
    with found.db.write() as connection:
        task = lifecycle.get_task(connection, body.taskId, who.account_id)
        if task is None:
            raise InvalidInput(RECORD_NOT_FOUND)
        delivery_id = history.redeliver(connection, task, found.clock())
    found.deliverer_wake()
    return ok({"webhookId": delivery_id})
