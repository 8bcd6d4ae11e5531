"""The market-jobs routes: createTask, recordInfo, and the list and cancel extensions.

The routes parse the request and answer it; what happens in between is the use-cases'
(`kinema.tasks.submit`, `kinema.tasks.lifecycle`).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, WithJsonSchema

from kinema.accounts import keys
from kinema.api.auth import CallerDep, ServicesDep, bearer_key_hash
from kinema.api.envelope import ok
from kinema.api.json_body import check_json_type, parse_json
from kinema.api.services import Services
from kinema.domain.errors import InvalidInput, KinemaError, Maintenance, TaskNotFound, Unauthorized
from kinema.domain.task import Task, TaskState, is_task_id
from kinema.storage.signing import link_expiry
from kinema.tasks import idempotency, lifecycle
from kinema.tasks.records import task_record
from kinema.tasks.submit import submit

log = logging.getLogger("kinema.tasks")
router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

CREATE_TASK_PATH = f"{router.prefix}/createTask"
#: createTask's body at most; larger ones are refused while they stream in (`kinema.api.bodies`).
MAX_BODY_BYTES = 64 * 1024


class BadRequest(KinemaError):
    """A request that cannot be read at all (the published service answers 400 here)."""

    code = 400


async def create_task(request: Request) -> Response:
    """Validate, price and queue a task; its price is reserved from the balance at once."""
    # A hot route: it reads its own parameters and hands the rest to `submit`, whose checks run
    # on the event loop (no I/O there) and whose one write goes to the app's gateway.
    found: Services = request.app.state.services
    key_hash = bearer_key_hash(request.headers.get("authorization"))
    who = await found.read_quickly(keys.authenticate_hash, found.db, key_hash)
    if found.settings.maintenance:
        raise Maintenance()
    await found.limits.hit_soon(found.limits.create_task, "create", who.account_id)
    # The body is read only now, for a caller with a key, and capped while it streams.
    check_json_type(request.headers.get("content-type"))
    body = parse_json(await request.body())
    submitted = await submit(found.submit_ports, who, body, request.headers.get("idempotency-key"))
    made = submitted.task
    if made is not None:
        log.info(
            "task %s %s model=%s price=%d account=%s",
            made.id,
            made.state.value,
            made.model,
            made.price,
            who.account_id,
        )
        found.wakeup.notify()
    return JSONResponse(ok({"taskId": submitted.task_id}))


async def record_info(request: Request) -> Response:
    # The route clients poll: it reads its own parameters rather than have FastAPI resolve
    # them, and finds the caller and the task in one read, on the event loop where that is quick.
    found: Services = request.app.state.services
    task_id = request.query_params.get("taskId")
    key_hash = bearer_key_hash(request.headers.get("authorization"))
    # An id that cannot be a task's is looked up as none at all: the database never sees it.
    lookup = task_id if task_id and is_task_id(task_id) else ""
    polled = await found.read_quickly(lifecycle.poll_task, found.db, key_hash, lookup)
    if polled is None:
        raise Unauthorized()
    who, task = polled
    await found.limits.hit_soon(found.limits.record_info, "poll", who.key_id)
    if not task_id:
        raise BadRequest("taskId parameter is required")
    if task is None:
        raise TaskNotFound()
    held = False
    if task.state is TaskState.QUEUING:
        held = at_cap(found, await found.read_quickly(lifecycle.running_now, found.db, who.account_id))
    return JSONResponse(ok(record_of(found, task, held=held)))


class PlainRoute(APIRoute):
    """A route whose endpoint takes the `Request` and returns a `Response` itself.

    For the two routes clients call most: FastAPI matches and documents them (parameters in
    ``openapi_extra``), but resolves no parameters and encodes no answer per request, which
    costs more than the work behind recordInfo.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


#: What `kinema.tasks.idempotency` takes: 1 to 255 printable characters (of those a header can
#: carry: Latin-1).
IDEMPOTENCY_KEY_SCHEMA: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": idempotency.MAX_KEY_LENGTH,
    "pattern": r"^[\u0020-\u007e\u00a1-\u00ac\u00ae-\u00ff]*$",
}
#: The taskId a route reads from the query: required, and never empty (else code 400). Any other
#: text is looked up, and a task id that names no task of the caller's answers 422
#: "recordInfo is null", as the published API does.
TASK_ID_PARAMETER: Final = {
    "name": "taskId",
    "in": "query",
    "required": True,
    "description": "The taskId createTask answered.",
    "schema": {"type": "string", "minLength": 1},
}
_AUTHORIZATION = {"name": "authorization", "in": "header", "required": False, "schema": {"type": "string"}}


def add_hot_routes(app: FastAPI) -> None:
    """createTask and recordInfo, on the app itself and ahead of every other route: the first
    routes matched, without an included router's second pass."""
    app.router.add_api_route(
        CREATE_TASK_PATH,
        create_task,
        methods=["POST"],
        summary="Create a generation task",
        tags=["jobs"],
        route_class_override=PlainRoute,
        openapi_extra={
            "parameters": [
                _AUTHORIZATION,
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "The same key with the same body within a day answers the first task.",
                    "schema": IDEMPOTENCY_KEY_SCHEMA,
                },
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
                TASK_ID_PARAMETER,
                _AUTHORIZATION,
            ]
        },
    )


@router.get("/list", summary="List your tasks, newest first")
def list_tasks(
    found: ServicesDep,
    who: CallerDep,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(),
        WithJsonSchema(
            {
                "type": "string",
                "format": "list-cursor",
                "description": "A nextCursor this server answered: the page after it.",
            }
        ),
    ] = None,
    state: Annotated[TaskState | None, Query()] = None,
) -> dict[str, Any]:
    before = _read_cursor(cursor) if cursor else None
    cap = found.settings.max_running_per_account
    with found.db.read() as connection:
        page, held = lifecycle.list_as_shown(
            connection, who.account_id, cap, limit=page_size + 1, before=before, state=state
        )
    more = len(page) > page_size
    page = page[:page_size]
    next_cursor = _write_cursor(page[-1]) if more else None
    return ok({"tasks": [record_of(found, task, held=held) for task in page], "nextCursor": next_cursor})


class TaskReference(BaseModel):
    taskId: str  # noqa: N815 - the wire's name


def known_task_id(task_id: str) -> str:
    """`task_id` when it can name a task; else the answer for an unknown task, before any lookup
    (the database never sees a NUL or other text that no task id holds)."""
    if not is_task_id(task_id):
        raise TaskNotFound()
    return task_id


@router.post("/cancel", summary="Cancel a task")
def cancel(found: ServicesDep, who: CallerDep, body: TaskReference) -> dict[str, Any]:
    """A task not yet running fails at once with code 499 and is refunded; a running one stops
    at the engine's next frame."""
    task = lifecycle.cancel_task(found.db, who.account_id, known_task_id(body.taskId), found.clock())
    if task.state is TaskState.FAIL:
        log.info("task %s fail 499: canceled by the owner", task.id)
        found.deliverer_wake()
    else:
        found.cancels.cancel(task.id)
    return ok(record_of(found, task))


def record_of(found: Services, task: Task, *, held: bool = False) -> dict[str, Any]:
    """recordInfo's ``data`` for `task`, its links signed for now."""
    expires_at = link_expiry(found.now_s(), found.settings.result_link_seconds)
    return task_record(task, found.signer, found.settings.public_url, expires_at, held=held)


def at_cap(found: Services, running: int) -> bool:
    """Whether an account running `running` tasks has its queued ones wait for them to finish."""
    return running >= found.settings.max_running_per_account


def _write_cursor(task: Task) -> str:
    return list_cursor(task.created_at, task.id)


def list_cursor(created_at: int, task_id: str) -> str:
    """The cursor of the page after the task `task_id`, made at `created_at` (Unix ms)."""
    return base64.urlsafe_b64encode(f"{created_at}:{task_id}".encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[int, str]:
    not_ours = InvalidInput("cursor is not one this server gave out")
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, task_id = decoded.split(":", 1)
        after = int(created_at)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise not_ours from error
    # What reaches the query is a time a column can hold and a task id, never any other text.
    if not (0 <= after < 2**63 and is_task_id(task_id)):
        raise not_ours
    return after, task_id
