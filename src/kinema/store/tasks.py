"""Every statement on the tasks table: the task aggregate's named queries.

A task's state changes only through `move`, which takes the state machine's `Move`
(`kinema.domain.transitions`): the ``WHERE`` admits only the move's sources (and, for a move the
worker makes, the attempt it claimed and a live lease), and the new state is the move's target
for the state the row was in. A write the table does not allow matches no row.

Times are parameters (Unix milliseconds), never read here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Connection,
    FromClause,
    Integer,
    RowMapping,
    ScalarSelect,
    Select,
    Update,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from kinema.domain.task import Task, TaskState
from kinema.domain.transitions import UNFINISHED, Move
from kinema.store.database import Database, Row, run
from kinema.store.dialects import Dialect, announce, notice
from kinema.store.notices import TASKS_CHANNEL
from kinema.store.schema import api_keys, tasks

_INSERT: Final = insert(tasks).values(
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
_BY_ID: Final = select(tasks).where(tasks.c.id == bindparam("task_id"))
_OWN: Final = _BY_ID.where(tasks.c.account_id == bindparam("account_id"))
#: The caller behind a key hash and their task, in one read: what every poll needs.
POLL: Final = (
    select(api_keys.c.id.label("caller_key_id"), api_keys.c.account_id.label("caller_account_id"), tasks)
    .select_from(
        api_keys.outerjoin(
            tasks, and_(tasks.c.id == bindparam("task_id"), tasks.c.account_id == api_keys.c.account_id)
        )
    )
    .where(api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None))
)
#: How many tasks of an account are generating (its running cap counts them).
RUNNING: Final = (
    select(func.count().label("running"))
    .select_from(tasks)
    .where(tasks.c.account_id == bindparam("account_id"), tasks.c.state == TaskState.GENERATING.value)
)


#: Whether any task waits in a state for a worker: one indexed row at most.
_READY: Final = {
    state: select(tasks.c.id)
    .where(
        tasks.c.state == state.value,
        tasks.c.lease_owner.is_(None),
        tasks.c.cancel_requested.is_(False),
        tasks.c.deadline_at > bindparam("now"),
    )
    .limit(1)
    for state in (TaskState.WAITING, TaskState.QUEUING)
}


def any_ready(db: Database, how: Move, now: int, models: frozenset[str] | None = None) -> bool:
    """Whether a claim by `how` could find a task now, of one of `models` if given (a read,
    quick enough to ask first)."""
    (source,) = how.sources
    if models is None:
        return db.first(_READY[source], {"now": now}) is not None
    with db.read() as connection:
        query = _READY[source].where(tasks.c.model.in_(sorted(models)))
        return connection.execute(query, {"now": now}).first() is not None


def _woken(how: Move) -> str:
    """The claims that may find, after `how`, what they could not before, as a notice on
    `TASKS_CHANNEL` names them: by the state each claim takes from. An intake claim (from
    ``waiting``) wakes for a task that waits again or an intake of an account that ends; a
    generation claim (from ``queuing``) for a task that is queued or a running slot come free."""
    woken = set()
    for source, target in how.targets.items():
        if TaskState.WAITING in (source, target):
            woken.add(TaskState.WAITING.value)
        if target is TaskState.QUEUING or source is TaskState.GENERATING:
            woken.add(TaskState.QUEUING.value)
    return ",".join(sorted(woken))


#: Moves after which a claim may find what it could not before, with what their notice says.
#: Each is announced to the workers of every process.
_WAKES: Final[Mapping[Move, str]] = {
    how: _woken(how)
    for how in (
        Move.INTAKE_DONE,
        Move.SUCCEED,
        Move.FAIL,
        Move.RELEASE,
        Move.REQUEUE,
        Move.ABANDON,
        Move.EXPIRE,
    )
}


def insert_task(connection: Connection, task: Task) -> None:
    announce(connection, TASKS_CHANNEL, task.state.value)  # waiting for its intake, or queuing
    run(
        connection,
        _INSERT,
        {
            "id": task.id,
            "account_id": task.account_id,
            "model": task.model,
            "state": task.state.value,
            "param": task.param,
            "input_json": json.dumps(task.input, separators=(",", ":")),
            "callback_url": task.callback_url,
            "price": task.price,
            "input_key": task.input_key,
            "created_at": task.created_at,
            "deadline_at": task.deadline_at,
        },
    )


def get_task(connection: Connection, task_id: str, account_id: str | None = None) -> Task | None:
    """A task by id; with `account_id`, only if it belongs to that account."""
    if account_id is None:
        result = connection.execute(_BY_ID, {"task_id": task_id})
    else:
        result = connection.execute(_OWN, {"task_id": task_id, "account_id": account_id})
    row = result.mappings().first()
    return None if row is None else to_task(row)


def poll(db: Database, key_hash: str, task_id: str) -> tuple[str, str, Task | None] | None:
    """(account id, key id, the task if it is that account's) for a live key, else None."""
    row = db.first(POLL, {"key_hash": key_hash, "task_id": task_id})
    if row is None:
        return None
    task = None if row["id"] is None else to_task(row)
    return row["caller_account_id"], row["caller_key_id"], task


def list_tasks(
    connection: Connection,
    account_id: str,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
    states: Sequence[TaskState] = (),
) -> list[Task]:
    """An account's tasks, newest first; `before` is the (created_at, id) of the last one seen."""
    query = select(tasks).where(tasks.c.account_id == account_id)
    if states:
        query = query.where(tasks.c.state.in_([state.value for state in states]))
    if before is not None:
        created_at, task_id = before
        query = query.where(
            or_(tasks.c.created_at < created_at, and_(tasks.c.created_at == created_at, tasks.c.id < task_id))
        )
    query = query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
    return [to_task(row) for row in connection.execute(query).mappings()]


def running_count(connection: Connection, account_id: str) -> int:
    return int(connection.execute(RUNNING, {"account_id": account_id}).scalar_one())


def running_now(db: Database, account_id: str) -> int:
    """`running_count` as a read of its own (`Database.first`: quick enough for the event loop)."""
    row = db.first(RUNNING, {"account_id": account_id})
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


# Changes of state.


@dataclass(frozen=True, slots=True)
class Moved:
    """What a move changed: the task it moved, as much as the caller needs next."""

    id: str
    account_id: str
    price: int
    callback_url: str | None


#: A condition on a task row, for the moves to match.
Condition = ColumnElement[bool]


def by_id(task_id: str) -> Condition:
    return tasks.c.id == task_id


def unheld(task_id: str) -> Condition:
    """The task, if no worker holds it."""
    return and_(tasks.c.id == task_id, tasks.c.lease_owner.is_(None))


def uncanceled(where: Condition) -> Condition:
    return and_(where, tasks.c.cancel_requested.is_(False))


def held(task_id: str, attempt: int) -> Condition:
    """The task as the worker that claimed it with `attempt` still holds it."""
    return and_(
        tasks.c.id == task_id,
        tasks.c.attempt == attempt,
        tasks.c.lease_owner.is_not(None),
        tasks.c.state.in_([state.value for state in UNFINISHED]),
    )


def moving(how: Move, where: ColumnElement[bool], **values: Any) -> Update:
    """The ``UPDATE`` that applies `how` to the task matching `where`, if it is in one of the
    move's sources; `values` are the other columns it writes."""
    targets = how.targets
    if len(set(targets.values())) == 1:
        state: Any = next(iter(targets.values())).value
    else:
        state = case(
            *((tasks.c.state == source.value, literal(target.value)) for source, target in targets.items())
        )
    return (
        update(tasks)
        .where(where, tasks.c.state.in_([source.value for source in targets]))
        .values(state=state, **values)
    )


def move(
    connection: Connection, how: Move, where: ColumnElement[bool], now: int, **values: Any
) -> Moved | None:
    """Apply `how` to the one task matching `where`, if it is in one of the move's sources.

    `values` are the other columns the move writes. None when no row matched: the task was in
    no state the move starts from, or (for a held move) the claim was lost.
    """
    returned: list[ColumnElement[Any]] = [tasks.c.id, tasks.c.account_id, tasks.c.price, tasks.c.callback_url]
    # A move that wakes claims sends its notice with its row (none on a database without them).
    sent = notice(connection, TASKS_CHANNEL, _WAKES[how]) if how in _WAKES else None
    if sent is not None:
        returned.append(sent)
    row = connection.execute(moving(how, where, updated_at=now, **values).returning(*returned)).first()
    if row is None:
        return None
    return Moved(row.id, row.account_id, int(row.price), row.callback_url)


#: What every move that takes a task out of a worker's hands writes beside its state.
UNLEASED: Final[Mapping[str, Any]] = {"lease_owner": None, "lease_expires_at": None}


def fail(
    connection: Connection,
    how: Move,
    where: ColumnElement[bool],
    code: str,
    message: str,
    now: int,
    **values: Any,
) -> Moved | None:
    """A move to ``fail``, with the reason and the time it ended."""
    return move(
        connection, how, where, now, fail_code=code, fail_msg=message, completed_at=now, **UNLEASED, **values
    )


class AccountFull(Exception):
    """A claim's candidate belongs to an account with no slot left, seen once the account was
    locked: the caller rolls the transaction back, which lets the candidate go, and claims
    again without that account (`claim`'s ``skipped``)."""

    def __init__(self, account_id: str) -> None:
        super().__init__(account_id)
        self.account_id = account_id


def claim(
    connection: Connection,
    dialect: Dialect,
    how: Move,
    worker_id: str,
    now: int,
    lease_ms: int,
    max_running_per_account: int,
    max_intakes_per_account: int | None = None,
    models: frozenset[str] | None = None,
    skipped: Sequence[str] = (),
) -> Task | None:
    """Take the next task ready for `how` (a claim), or None when there is none.

    A generation claim takes the oldest task whose account has a running slot free. An intake
    claim (which may wait on a slow image host) takes the oldest task of the account with the
    fewest intakes in flight, and none of an account with `max_intakes_per_account` of them
    already: one account's slow hosts hold no more than its share of the intake threads.
    Tasks of the `skipped` accounts are passed over; a worker serving only some `models` takes
    only their tasks.

    The candidate row is the only one locked (SKIP LOCKED on PostgreSQL, so claimers never
    wait on each other). An account's cap is counted again by the claim's ``UPDATE``, after a
    lock of the account's own, so two claimers can never both take its last slot; when the
    account turned out full, `AccountFull` is raised for the caller to roll back and go on.
    """
    cap = max_running_per_account if how is Move.CLAIM_GENERATE else max_intakes_per_account
    params: dict[str, Any] = {"now": now, "skipped": list(skipped)}
    if cap is not None:
        params["cap"] = cap
    if models is not None:
        params["models"] = sorted(models)
    if how is Move.CLAIM_GENERATE:  # the oldest first: the claim index's own order
        dialect.follow_index_order(connection)
    candidate = connection.execute(
        candidates(dialect, how, cap is not None, models is not None), params
    ).first()
    if candidate is None:
        return None
    task_id, account_id = candidate
    if cap is not None:
        slot = "running" if how is Move.CLAIM_GENERATE else "intake"
        dialect.serialise(connection, f"kinema.{slot}:{account_id}")
    params |= {
        "task": task_id,
        "of_account": account_id,
        "worker": worker_id,
        "lease_until": now + lease_ms,
    }
    row = connection.execute(_taking(how, cap is not None), params).mappings().first()
    if row is None:  # the row is locked (or the database is) and matched above: only the cap refuses
        raise AccountFull(account_id)
    return to_task(row)


#: The claims' statements, built once: (database, move, capped, for some models) -> query.
_CANDIDATES: Final[dict[tuple[str, Move, bool, bool], Select[Any]]] = {}
_TAKINGS: Final[dict[tuple[Move, bool], Update]] = {}


def candidates(dialect: Dialect, how: Move, capped: bool, some_models: bool) -> Select[Any]:
    """The claim's candidate (its id and account), locked: the oldest ready task of an account
    with a slot free, for an intake of the account with the fewest intakes in flight."""
    key = (dialect.name, how, capped, some_models)
    found = _CANDIDATES.get(key)
    if found is not None:
        return found
    (source,) = how.sources
    query = (
        select(tasks.c.id, tasks.c.account_id)
        .where(
            tasks.c.state == source.value,
            tasks.c.lease_owner.is_(None),
            tasks.c.cancel_requested.is_(False),
            tasks.c.deadline_at > bindparam("now", type_=BigInteger),
            tasks.c.account_id.not_in(bindparam("skipped", expanding=True)),
        )
        .limit(1)
    )
    busy = _busy_of_account(how)
    if how is Move.CLAIM_INTAKE:
        query = query.order_by(busy, tasks.c.created_at, tasks.c.id)
    else:
        query = query.order_by(tasks.c.created_at, tasks.c.id)
    if capped:
        query = query.where(busy < bindparam("cap", type_=Integer))
    if some_models:
        query = query.where(tasks.c.model.in_(bindparam("models", expanding=True)))
    found = _CANDIDATES[key] = dialect.lock_rows(query, tasks)
    return found


def _taking(how: Move, capped: bool) -> Update:
    """The claim's move of the candidate, which counts the account's busy tasks again when
    `capped`: in a statement of its own, so that it sees every claim committed before the
    account's lock was granted. Answers the whole row."""
    found = _TAKINGS.get((how, capped))
    if found is not None:
        return found
    now = bindparam("now", type_=BigInteger)
    where: ColumnElement[bool] = tasks.c.id == bindparam("task")
    if capped:
        where = and_(where, _busy_of_account(how, bindparam("of_account")) < bindparam("cap", type_=Integer))
    values: dict[str, Any] = {
        "attempt": tasks.c.attempt + 1,
        "lease_owner": bindparam("worker"),
        "lease_expires_at": bindparam("lease_until", type_=BigInteger),
        "updated_at": now,
    }
    if how is Move.CLAIM_GENERATE:
        values["started_at"] = func.coalesce(tasks.c.started_at, now)
    found = _TAKINGS[(how, capped)] = moving(how, where, **values).returning(*tasks.c)
    return found


def _busy(how: Move, of: FromClause) -> Condition:
    """The tasks of `of` (a table or alias) that hold what a claim of `how` would take: a
    running slot (generating), or an intake (waiting, held by a worker)."""
    if how is Move.CLAIM_GENERATE:
        return of.c.state == TaskState.GENERATING.value
    # The state written into the statement, not bound: only then can the database count these
    # from the index of intakes in flight (`schema.INTAKE_IN_FLIGHT`), in a prepared plan too.
    waiting: BindParameter[str] = bindparam("intake_state", TaskState.WAITING.value, literal_execute=True)
    return and_(of.c.state == waiting, of.c.lease_owner.is_not(None))


def _busy_of_account(how: Move, account: ColumnElement[str] = tasks.c.account_id) -> ScalarSelect[int]:
    """How many of an account's tasks are busy, as a subquery of a claim's statement: by default
    the candidate's account (correlated to the row)."""
    busy = tasks.alias("busy")
    return (
        select(func.count())
        .select_from(busy)
        .where(busy.c.account_id == account, _busy(how, busy))
        .scalar_subquery()
    )


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease a worker renews: the task, the attempt that claimed it, its progress if known."""

    task_id: str
    attempt: int
    progress: int | None = None


def renew_leases(connection: Connection, leases: Sequence[Lease], now: int, lease_ms: int) -> dict[str, bool]:
    """Renew every lease in `leases` in one statement (and record their progress).

    Answers, for each task still held by the attempt that claimed it, whether cancel was asked;
    a task missing from the answer was lost.
    """
    if not leases:
        return {}
    values: dict[str, Any] = {"lease_expires_at": now + lease_ms, "updated_at": now}
    progress = {lease.task_id: lease.progress for lease in leases if lease.progress is not None}
    if progress:
        values["progress"] = case(progress, value=tasks.c.id, else_=tasks.c.progress)
    rows = connection.execute(
        update(tasks)
        .where(or_(*(held(lease.task_id, lease.attempt) for lease in leases)))
        .values(**values)
        .returning(tasks.c.id, tasks.c.cancel_requested)
    )
    return {row.id: bool(row.cancel_requested) for row in rows}


def save_engine_state(connection: Connection, task_id: str, attempt: int, state: str, now: int) -> bool:
    result = connection.execute(
        update(tasks).where(held(task_id, attempt)).values(engine_state=state, updated_at=now)
    )
    return result.rowcount == 1


def request_cancel(connection: Connection, task_id: str, now: int) -> None:
    """Ask the worker holding the task to stop at its next frame."""
    connection.execute(
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.state.in_([state.value for state in UNFINISHED]))
        .values(cancel_requested=True, updated_at=now)
    )


@dataclass(frozen=True, slots=True)
class Lapsed:
    """A task whose worker stopped renewing its lease."""

    id: str
    lapses: int
    cancel_requested: bool


def lock_overdue(connection: Connection, dialect: Dialect, now: int) -> list[str]:
    """Unfinished tasks past their deadline, locked for this transaction (others skip them)."""
    query = (
        select(tasks.c.id)
        .where(tasks.c.state.in_([state.value for state in UNFINISHED]), tasks.c.deadline_at <= now)
        .order_by(tasks.c.created_at, tasks.c.id)
    )
    return list(connection.execute(dialect.lock_rows(query, tasks)).scalars())


def lock_lapsed(connection: Connection, dialect: Dialect, now: int) -> list[Lapsed]:
    """Unfinished tasks whose lease ran out, locked for this transaction (others skip them)."""
    query = (
        select(tasks.c.id, tasks.c.lapses, tasks.c.cancel_requested)
        .where(
            tasks.c.state.in_([state.value for state in UNFINISHED]),
            tasks.c.lease_expires_at.is_not(None),
            tasks.c.lease_expires_at <= now,
        )
        .order_by(tasks.c.created_at, tasks.c.id)
    )
    return [
        Lapsed(row.id, int(row.lapses), bool(row.cancel_requested))
        for row in connection.execute(dialect.lock_rows(query, tasks))
    ]


def still_lapsed(task_id: str, now: int) -> ColumnElement[bool]:
    return and_(tasks.c.id == task_id, tasks.c.lease_expires_at <= now)


# Retention.


def finished_by(connection: Connection, when: int, *, unpurged: bool, limit: int) -> list[tuple[str, str]]:
    """(id, account id) of finished tasks completed by `when`; `unpurged`: only those whose
    files are still there."""
    query = select(tasks.c.id, tasks.c.account_id).where(
        tasks.c.state.in_([TaskState.SUCCESS.value, TaskState.FAIL.value]), tasks.c.completed_at <= when
    )
    if unpurged:
        query = query.where(tasks.c.files_purged_at.is_(None))
    return [(row.id, row.account_id) for row in connection.execute(query.limit(limit))]


def mark_files_purged(connection: Connection, task_ids: Sequence[str], now: int) -> None:
    connection.execute(update(tasks).where(tasks.c.id.in_(task_ids)).values(files_purged_at=now))


def existing(connection: Connection, task_ids: Sequence[str]) -> set[str]:
    """Which of `task_ids` name a task."""
    return set(connection.execute(select(tasks.c.id).where(tasks.c.id.in_(task_ids))).scalars())


def delete_tasks(connection: Connection, task_ids: Sequence[str]) -> None:
    connection.execute(delete(tasks).where(tasks.c.id.in_(task_ids)))


def to_task(row: Row | RowMapping) -> Task:
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
        lease_owner=row["lease_owner"],
        lease_expires_at=None if row["lease_expires_at"] is None else int(row["lease_expires_at"]),
    )
