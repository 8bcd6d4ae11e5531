"""Submitting a task: a caller's request body becomes a priced, queued task, or a domain error.

The checks come in the order the contract gives, each cheap before the next: the body against
the model's schema, the engine's capabilities, the Idempotency-Key; then an image on this
server, once the balance is seen to cover the price, is checked (its size from its header
first, then decoded, a few at a time: `DecodeSlots`) and copied as the task's input (so the
task starts queued); then one write transaction reserves the price and inserts the task.
Nothing here knows of HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from anyio import to_thread

from kinema.accounts import credits
from kinema.catalog import Catalog, PriceTable, TaskRequest, validate_create_task
from kinema.domain.accounts import Caller
from kinema.domain.clock import Clock
from kinema.domain.errors import FeatureDisabled, InvalidInput
from kinema.domain.task import Task
from kinema.engines.base import EngineInfo
from kinema.media.intake import DecodeSlots
from kinema.storage import layout
from kinema.storage.base import BlobStore
from kinema.storage.own import OwnFiles
from kinema.store.database import Connection
from kinema.store.gateway import Gateway
from kinema.tasks import idempotency, lifecycle
from kinema.tasks.lifecycle import NewTask


@dataclass(frozen=True, slots=True)
class SubmitPorts:
    """What submitting needs, built once per app."""

    gateway: Gateway
    store: BlobStore
    own_files: OwnFiles
    catalog: Catalog
    prices: PriceTable
    engine_for: Callable[[str], EngineInfo]  #: The engine that serves a model.
    clock: Clock
    task_timeout_ms: int
    idempotency_ttl_ms: int
    decodes: DecodeSlots  #: The process's turns at decoding an image.


@dataclass(frozen=True, slots=True)
class Submitted:
    task_id: str
    task: Task | None  #: The task made now; None when an earlier request with the key made it.


@dataclass(frozen=True, slots=True)
class _Order:
    """A request that passed every check that needs no I/O, ready to be written."""

    request: TaskRequest
    new: NewTask
    key: str | None  #: The Idempotency-Key
    digest: str  #: The body's hash, when there is a key


async def submit(ports: SubmitPorts, caller: Caller, body: object, idempotency_key: str | None) -> Submitted:
    """Make the task `body` asks for, on `caller`'s account; a `KinemaError` says why not."""
    order = _order(ports, body, idempotency_key)
    if order.key is not None:
        earlier = await ports.gateway.read(_earlier_task, ports, caller, order)
        if earlier is not None:
            return Submitted(earlier, None)
    image_url = order.request.image_url
    if image_url is None:
        new = replace(order.new, ready=True)
    elif ports.own_files.is_own(image_url):
        # Checking the image costs a decode: an account that cannot pay is refused before it.
        await ports.gateway.read(credits.check_covers, ports.gateway.db, caller.account_id, order.new.price)
        new = await to_thread.run_sync(_with_own_input, ports, caller, image_url, order.new)
    else:
        new = order.new
    try:
        made = await ports.gateway.write(partial(_insert_task, ports, caller, order, new))
    except BaseException:
        await _forget_input(ports, new)
        raise
    if isinstance(made, str):  # the task an earlier request with this Idempotency-Key made
        await _forget_input(ports, new)
        return Submitted(made, None)
    return Submitted(made.id, made)


def _order(ports: SubmitPorts, body: object, idempotency_key: str | None) -> _Order:
    request = validate_create_task(body, ports.catalog)
    if not _can_serve(ports.engine_for(request.model.name), request):
        raise FeatureDisabled()
    key = idempotency.check_key(idempotency_key) if idempotency_key is not None else None
    new = NewTask(
        model=request.model.name,
        param=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        input=request.input,
        callback_url=request.callback_url,
        price=ports.prices.price(request),
    )
    return _Order(request, new, key, "" if key is None else idempotency.body_hash(body))


def _can_serve(engine: EngineInfo, request: TaskRequest) -> bool:
    return (
        request.model.capability in engine.capabilities
        and request.resolution in engine.resolutions
        and request.duration_s in engine.durations
    )


def _earlier_task(ports: SubmitPorts, caller: Caller, order: _Order) -> str | None:
    assert order.key is not None
    db = ports.gateway.db
    return idempotency.earlier_task_now(db, caller.account_id, order.key, order.digest, ports.clock())


def _insert_task(
    ports: SubmitPorts, caller: Caller, order: _Order, new: NewTask, connection: Connection
) -> Task | str:
    """The task written (its price reserved), or the id of the task its Idempotency-Key made."""
    now = ports.clock()
    if order.key is not None:
        db = ports.gateway.db
        earlier = idempotency.earlier_task(connection, caller.account_id, order.key, order.digest, now)
        if earlier is None:
            earlier = idempotency.remember(
                db,
                connection,
                caller.account_id,
                order.key,
                order.digest,
                new.id,
                now,
                ports.idempotency_ttl_ms,
            )
        if earlier is not None:
            return earlier
    return lifecycle.create_task(connection, caller.account_id, new, now, ports.task_timeout_ms)


def _with_own_input(ports: SubmitPorts, caller: Caller, image_url: str, new: NewTask) -> NewTask:
    """A task whose image is on this server: checked right now, and copied as the task's input.

    A bad image is refused here, with 422 and no charge; a good one is copied to the task's
    own input, so that replacing or expiring the upload cannot change the task, and the task
    starts queued with nothing to fetch.
    """
    data = ports.own_files.read(image_url, "input.image_url")
    if data is None:
        return new
    try:
        mime_type = ports.decodes.check_image(data)
    except InvalidInput as error:
        raise InvalidInput(f"input.image_url: {error.message}") from error
    input_key = layout.input_key(caller.account_id, new.id, mime_type)
    ports.store.put_bytes(input_key, data)
    return replace(new, ready=True, input_key=input_key)


async def _forget_input(ports: SubmitPorts, new: NewTask) -> None:
    if new.input_key is not None:
        await to_thread.run_sync(ports.store.delete, new.input_key)
