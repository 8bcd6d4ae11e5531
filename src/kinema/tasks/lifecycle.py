"""Every change of a task's state, each one transaction on the task row.

The task row is the job: there is no second queue that could disagree with it. Workers claim
rows with a lease and renew it while they work; the reaper puts back tasks whose worker
vanished. Each claim raises ``attempt``, and every write that finishes a task names the
attempt it claimed, so a worker that lost its lease can never overwrite a newer one's work.
Times are parameters (Unix milliseconds), never read here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from kinema.accounts import credits
from kinema.accounts.keys import Caller, bearer_hash, new_id
from kinema.domain.errors import InvalidInput, Unauthorized
from kinema.domain.task import FailCode, Task, TaskState
from kinema.store.database import Database, Row, run
from kinema.store.schema import accounts, api_keys, tasks
from kinema.tasks.outbox import enqueue_callback


class Stage(StrEnum):
    """The two kinds of work a worker claims."""

    INTAKE = "intake"  #: Fetch and check a waiting task's input, then queue it.
    GENERATE = "generate"  #: Run the engine on a queued task.


@dataclass(frozen=True, slots=True)
class Claim:
    """A task held by a worker; `attempt` fences every write that follows."""

    task: Task
    attempt: int
    stage: Stage


@dataclass(frozen=True, slots=True)
class Pulse:
    """What a heartbeat learned."""

    owned: bool  #: False when the lease was lost: the work must stop and must not finish.
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class NewTask:
    model: str
    param: str
    input: Mapping[str, object]
    callback_url: str | None
    price: int
    ready: bool = False  #: True when the input needs no fetching, so the task starts queued.
    input_key: str | None = None  #: The checked input, when it was stored at creation.
    id: str = field(default_factory=new_id)


def create_task(connection: Connection, account_id: str, new: NewTask, now: int, timeout_ms: int) -> Task:
    """Insert a task and reserve its price, in the caller's transaction."""
    credits.reserve(connection, account_id, new.id, new.price, now)
    task = Task(
        id=new.id,
        account_id=account_id,
        model=new.model,
        state=TaskState.QUEUING if new.ready else TaskState.WAITING,
        param=new.param,
        input=dict(new.input),
        callback_url=new.callback_url,
        price=new.price,
        progress=0,
        result=None,
        fail_code="",
        fail_msg="",
        attempt=0,
        lapses=0,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
        started_at=None,
        completed_at=None,
        deadline_at=now + timeout_ms,
        input_key=new.input_key,
    )
    run(
        connection,
        _INSERT_TASK,
        {
            "id": task.id,
            "account_id": account_id,
            "model": task.model,
            "state": task.state.value,
            "param": task.param,
            "input_json": json.dumps(new.input, separators=(",", ":")),
            "callback_url": task.callback_url,
            "price": task.price,
            "input_key": task.input_key,
            "created_at": now,
            "deadline_at": task.deadline_at,
        },
    )
    return task


_INSERT_TASK: Final = insert(tasks).values(
    id=bindparam("id"),
    account_id=bindparam("account_id"),
    model=bindparam("model"),
    state=bindparam("state"),
    param=bindparam("param"),
    input_json=bindparam("input_json"),
    callback_url=bindparam("callback_url"),
    price=bindparam("price"),
    progress=0,
    input_key=bindparam("input_key"),
    created_at=bindparam("created_at"),
    updated_at=bindparam("created_at"),
    deadline_at=bindparam("deadline_at"),
)
_TASK_BY_ID: Final = select(tasks).where(tasks.c.id == bindparam("task_id"))
_OWN_TASK: Final = _TASK_BY_ID.where(tasks.c.account_id == bindparam("account_id"))
_POLL: Final = (
    select(api_keys.c.id.label("caller_key_id"), api_keys.c.account_id.label("caller_account_id"), tasks)
    .select_from(
        api_keys.outerjoin(
            tasks, and_(tasks.c.id == bindparam("task_id"), tasks.c.account_id == api_keys.c.account_id)
        )
    )
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)


def get_task(connection: Connection, task_id: str, account_id: str | None = None) -> Task | None:
    """A task by id; with `account_id`, only if it belongs to that account."""
    if account_id is None:
        result = connection.execute(_TASK_BY_ID, {"task_id": task_id})
    else:
        result = connection.execute(_OWN_TASK, {"task_id": task_id, "account_id": account_id})
    row = result.mappings().first()
    return None if row is None else _to_task(row)


def poll_task(db: Database, authorization: str | None, task_id: str) -> tuple[Caller, Task | None]:
    """The caller behind `authorization` and their task `task_id` (None when it is not theirs),
    in one read: what every poll of recordInfo needs. `Unauthorized` without a live key."""
    row = db.first(_POLL, {"key_hash": bearer_hash(authorization), "task_id": task_id})
    if row is None:
        raise Unauthorized()
    who = Caller(account_id=row["caller_account_id"], key_id=row["caller_key_id"])
    return who, None if row["id"] is None else _to_task(row)


def list_tasks(
    connection: Connection,
    account_id: str,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
    state: TaskState | None = None,
) -> list[Task]:
    """An account's tasks, newest first; `before` is the (created_at, id) of the last one seen."""
    query = select(tasks).where(tasks.c.account_id == account_id)
    if state is not None:
        query = query.where(tasks.c.state == state.value)
    if before is not None:
        created_at, task_id = before
        query = query.where(
            or_(tasks.c.created_at < created_at, and_(tasks.c.created_at == created_at, tasks.c.id < task_id))
        )
    query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
    return [_to_task(row) for row in connection.execute(query).mappings()]


_RUNNING: Final = (
    select(func.count().label("running"))
    .select_from(tasks)
    .where(tasks.c.account_id == bindparam("account_id"), tasks.c.state == TaskState.GENERATING.value)
)


def running_count(connection: Connection, account_id: str) -> int:
    return int(connection.execute(_RUNNING, {"account_id": account_id}).scalar_one())


def running_now(db: Database, account_id: str) -> int:
    """`running_count` as a read of its own (`Database.first`: quick enough for the event loop)."""
    row = db.first(_RUNNING, {"account_id": account_id})
    return 0 if row is None else int(row["running"])


def count_by_state(connection: Connection) -> dict[TaskState, int]:
    counts = dict.fromkeys(TaskState, 0)
    for state, count in connection.execute(select(tasks.c.state, func.count()).group_by(tasks.c.state)):
        counts[TaskState(state)] = int(count)
    return counts


def oldest_queued_at(connection: Connection) -> int | None:
    value = connection.execute(
        select(func.min(tasks.c.created_at)).where(
            tasks.c.state.in_([TaskState.WAITING.value, TaskState.QUEUING.value])
        )
    ).scalar_one()
    return None if value is None else int(value)


# Claiming.


def claim_next(
    db: Database, stage: Stage, worker_id: str, now: int, lease_ms: int, max_running_per_account: int
) -> Claim | None:
    """Take the oldest task ready for `stage`, or None when there is none."""
    with db.write() as connection:
        candidates = _candidates(connection, stage, now, max_running_per_account, lock=not db.is_sqlite)
        for task_id, account_id in candidates:
            if stage is Stage.GENERATE and not db.is_sqlite:
                # Another worker may be claiming for the same account right now; holding the
                # account row makes the running cap exact.
                connection.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())
                if running_count(connection, account_id) >= max_running_per_account:
                    continue
            values: dict[str, Any] = {
                "attempt": tasks.c.attempt + 1,
                "lease_owner": worker_id,
                "lease_expires_at": now + lease_ms,
                "updated_at": now,
            }
            if stage is Stage.GENERATE:
                values |= {
                    "state": TaskState.GENERATING.value,
                    "started_at": func.coalesce(tasks.c.started_at, now),
                }
            connection.execute(update(tasks).where(tasks.c.id == task_id).values(**values))
            task = get_task(connection, task_id)
            assert task is not None
            return Claim(task, task.attempt, stage)
    return None


def _candidates(
    connection: Connection, stage: Stage, now: int, max_running_per_account: int, *, lock: bool
) -> list[tuple[str, str]]:
    state = TaskState.WAITING if stage is Stage.INTAKE else TaskState.QUEUING
    query = (
        select(tasks.c.id, tasks.c.account_id)
        .where(
            tasks.c.state == state.value,
            tasks.c.lease_owner.is_(None),
            tasks.c.cancel_requested.is_(False),
            tasks.c.deadline_at > now,
        )
        .order_by(tasks.c.created_at, tasks.c.id)
        .limit(1 if stage is Stage.INTAKE else 20)
    )
    if stage is Stage.GENERATE:
        running = tasks.alias("running")
        busy = (
            select(func.count())
            .select_from(running)
            .where(running.c.account_id == tasks.c.account_id, running.c.state == TaskState.GENERATING.value)
            .scalar_subquery()
        )
        query = query.where(busy < max_running_per_account)
    if lock:
        query = query.with_for_update(skip_locked=True, of=tasks)
    return [(row.id, row.account_id) for row in connection.execute(query)]


# While working.


def heartbeat(
    db: Database, task_id: str, attempt: int, now: int, lease_ms: int, progress: int | None = None
) -> Pulse:
    """Renew the lease (and record progress); tells the worker whether to go on."""
    values: dict[str, Any] = {"lease_expires_at": now + lease_ms, "updated_at": now}
    if progress is not None:
        values["progress"] = max(0, min(99, progress))
    with db.write() as connection:
        row = connection.execute(
            update(tasks)
            .where(_held(task_id, attempt))
            .values(**values)
            .returning(tasks.c.cancel_requested, tasks.c.deadline_at)
        ).first()
    if row is None:
        return Pulse(owned=False, cancel_requested=False)
    return Pulse(owned=True, cancel_requested=bool(row.cancel_requested))


def save_engine_state(db: Database, claim: Claim, state: Mapping[str, str], now: int) -> bool:
    """Keep what the engine needs to resume this task; False if the claim was lost."""
    with db.write() as connection:
        result = connection.execute(
            update(tasks)
            .where(_held(claim.task.id, claim.attempt))
            .values(engine_state=json.dumps(dict(state), separators=(",", ":")), updated_at=now)
        )
        return result.rowcount == 1


def mark_ready(db: Database, claim: Claim, input_key: str | None, now: int) -> bool:
    """An intake finished: the task joins the queue. False if the claim was lost meanwhile."""
    with db.write() as connection:
        result = connection.execute(
            update(tasks)
            .where(_held(claim.task.id, claim.attempt), tasks.c.cancel_requested.is_(False))
            .values(
                state=TaskState.QUEUING.value,
                input_key=input_key,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
        return result.rowcount == 1


def finish_success(db: Database, claim: Claim, result: Mapping[str, str], now: int) -> bool:
    """Record the result and queue the callback; the credits stay spent. False if the claim was lost."""
    with db.write() as connection:
        row = connection.execute(
            update(tasks)
            .where(_held(claim.task.id, claim.attempt), tasks.c.state == TaskState.GENERATING.value)
            .values(
                state=TaskState.SUCCESS.value,
                progress=100,
                result_json=json.dumps(dict(result), separators=(",", ":")),
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
                completed_at=now,
            )
            .returning(tasks.c.id, tasks.c.account_id, tasks.c.callback_url)
        ).first()
        if row is None:
            return False
        if row.callback_url:
            enqueue_callback(connection, row.id, row.account_id, row.callback_url, now)
        return True


def finish_failure(db: Database, claim: Claim, code: FailCode, message: str, now: int) -> bool:
    """Fail the claimed task and refund it. False if the claim was lost."""
    with db.write() as connection:
        return _fail(connection, _held(claim.task.id, claim.attempt), code, message, now)


def release(db: Database, claim: Claim, now: int) -> bool:
    """Give a claimed task back unfinished (the worker is shutting down); no attempt is spent."""
    back_to = TaskState.WAITING if claim.stage is Stage.INTAKE else TaskState.QUEUING
    with db.write() as connection:
        result = connection.execute(
            update(tasks)
            .where(_held(claim.task.id, claim.attempt), tasks.c.cancel_requested.is_(False))
            .values(state=back_to.value, lease_owner=None, lease_expires_at=None, progress=0, updated_at=now)
        )
        return result.rowcount == 1


# From outside the worker.


def cancel_task(db: Database, account_id: str, task_id: str, now: int) -> Task:
    """Cancel an unfinished task: at once when no worker holds it, else at the worker's next frame."""
    with db.write() as connection:
        task = get_task(connection, task_id, account_id)
        if task is None:
            raise InvalidInput("recordInfo is null")
        if task.state.is_terminal:
            raise InvalidInput(f"the task has already finished ({task.state.value})")
        unheld = and_(tasks.c.id == task_id, tasks.c.lease_owner.is_(None), _unfinished())
        if not _fail(connection, unheld, FailCode.CANCELED, "canceled by the owner", now):
            connection.execute(
                update(tasks)
                .where(tasks.c.id == task_id, _unfinished())
                .values(cancel_requested=True, updated_at=now)
            )
        task = get_task(connection, task_id)
        assert task is not None
        return task


@dataclass(frozen=True, slots=True)
class Reaped:
    requeued: list[str]
    failed: list[str]


def reap(db: Database, now: int, max_attempts: int) -> Reaped:
    """Put back tasks whose worker vanished; fail those out of attempts or past their deadline."""
    requeued: list[str] = []
    failed: list[str] = []
    with db.write() as connection:
        overdue = connection.execute(
            select(tasks.c.id).where(_unfinished(), tasks.c.deadline_at <= now).order_by(tasks.c.created_at)
        ).scalars()
        for task_id in list(overdue):
            if _fail(
                connection, tasks.c.id == task_id, FailCode.TIMED_OUT, "the task ran past its deadline", now
            ):
                failed.append(task_id)
        lapsed = connection.execute(
            select(tasks.c.id, tasks.c.state, tasks.c.lapses, tasks.c.cancel_requested).where(
                _unfinished(), tasks.c.lease_expires_at.is_not(None), tasks.c.lease_expires_at <= now
            )
        ).all()
        for task_id, state, lapses, cancel_requested in lapsed:
            still_lapsed = and_(tasks.c.id == task_id, tasks.c.lease_expires_at <= now)
            if cancel_requested:
                if _fail(connection, still_lapsed, FailCode.CANCELED, "canceled by the owner", now):
                    failed.append(task_id)
                continue
            if lapses + 1 >= max_attempts:
                message = f"the worker running this task stopped {lapses + 1} times"
                if _fail(connection, still_lapsed, FailCode.INTERNAL, message, now, lapses=lapses + 1):
                    failed.append(task_id)
                continue
            back_to = TaskState.WAITING if state == TaskState.WAITING.value else TaskState.QUEUING
            connection.execute(
                update(tasks)
                .where(still_lapsed)
                .values(
                    state=back_to.value,
                    lapses=lapses + 1,
                    lease_owner=None,
                    lease_expires_at=None,
                    progress=0,
                    updated_at=now,
                )
            )
            requeued.append(task_id)
    return Reaped(requeued, failed)


# Helpers.


def _unfinished() -> Any:
    return tasks.c.state.in_([TaskState.WAITING.value, TaskState.QUEUING.value, TaskState.GENERATING.value])


def _held(task_id: str, attempt: int) -> Any:
    return and_(
        tasks.c.id == task_id, tasks.c.attempt == attempt, tasks.c.lease_owner.is_not(None), _unfinished()
    )


def _fail(
    connection: Connection, condition: Any, code: FailCode, message: str, now: int, lapses: int | None = None
) -> bool:
    """Fail the one unfinished task matching `condition`, refund it and queue its callback, once."""
    values: dict[str, Any] = {
        "state": TaskState.FAIL.value,
        "fail_code": code.value,
        "fail_msg": message,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
        "completed_at": now,
    }
    if lapses is not None:
        values["lapses"] = lapses
    row = connection.execute(
        update(tasks)
        .where(condition, _unfinished())
        .values(**values)
        .returning(tasks.c.id, tasks.c.account_id, tasks.c.price, tasks.c.callback_url)
    ).first()
    if row is None:
        return False
    credits.refund(connection, row.account_id, row.id, int(row.price), now)
    if row.callback_url:
        enqueue_callback(connection, row.id, row.account_id, row.callback_url, now)
    return True


def _to_task(row: Row) -> Task:
    return Task(
        id=row["id"],
        account_id=row["account_id"],
        model=row["model"],
        state=TaskState(row["state"]),
        param=row["param"],
        input=json.loads(row["input_json"]),
        callback_url=row["callback_url"],
        price=int(row["price"]),
        progress=int(row["progress"]),
        result=json.loads(row["result_json"]) if row["result_json"] else None,
        fail_code=row["fail_code"],
        fail_msg=row["fail_msg"],
        attempt=int(row["attempt"]),
        lapses=int(row["lapses"]),
        cancel_requested=bool(row["cancel_requested"]),
        created_at=int(row["created_at"]),
        updated_at=int(row["updated_at"]),
        started_at=None if row["started_at"] is None else int(row["started_at"]),
        completed_at=None if row["completed_at"] is None else int(row["completed_at"]),
        deadline_at=int(row["deadline_at"]),
        input_key=row["input_key"],
        engine_state=json.loads(row["engine_state"]) if row["engine_state"] else None,
    )
