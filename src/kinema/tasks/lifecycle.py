"""Every change of a task's state, each one transaction on the task row.

The task row is the job: there is no second queue that could disagree with it. Workers claim
rows with a lease and renew it while they work; the reaper puts back tasks whose worker
vanished. Each claim raises ``attempt``, and every write that finishes a task names the
attempt it claimed, so a worker that lost its lease can never overwrite a newer one's work.
Which moves exist and where each may go is the state machine's (`kinema.domain.transitions`);
the statements are the store's (`kinema.store.tasks`); what happens with money and callbacks
when a task ends is here. Times are parameters (Unix milliseconds), never read here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from kinema.accounts import credits
from kinema.accounts.keys import new_id
from kinema.domain.accounts import Caller
from kinema.domain.errors import InvalidInput, TaskNotFound
from kinema.domain.task import FailCode, Task, TaskState
from kinema.domain.transitions import UNFINISHED, Move
from kinema.store import tasks as statements
from kinema.store.database import Connection, Database
from kinema.store.notices import TASKS_CHANNEL, Listener
from kinema.store.tasks import UNLEASED, Lease, Moved, held, still_lapsed
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
    statements.insert_task(connection, task)
    return task


def get_task(connection: Connection, task_id: str, account_id: str | None = None) -> Task | None:
    """A task by id; with `account_id`, only if it belongs to that account."""
    return statements.get_task(connection, task_id, account_id)


def poll_task(db: Database, key_hash: str, task_id: str) -> tuple[Caller, Task | None] | None:
    """The caller of a live key with this hash and their task `task_id` (None when it is not
    theirs), in one read: what every poll of recordInfo needs. None without a live key."""
    found = statements.poll(db, key_hash, task_id)
    if found is None:
        return None
    account_id, key_id, task = found
    return Caller(account_id=account_id, key_id=key_id), task


def list_tasks(
    connection: Connection,
    account_id: str,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
    state: TaskState | None = None,
) -> list[Task]:
    """An account's tasks, newest first; `before` is the (created_at, id) of the last one seen."""
    states = () if state is None else (state,)
    return statements.list_tasks(connection, account_id, limit=limit, before=before, states=states)


def list_as_shown(
    connection: Connection,
    account_id: str,
    max_running: int,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
    state: TaskState | None = None,
) -> tuple[list[Task], bool]:
    """An account's tasks as the wire shows them, and whether its queued ones are held.

    While the account runs `max_running` tasks, its queued tasks show as ``waiting`` (they are
    not next in line), so a filter on a state means the state shown: ``waiting`` takes them in,
    ``queuing`` leaves them out.
    """
    held = running_count(connection, account_id) >= max_running
    states: tuple[TaskState, ...] = () if state is None else (state,)
    if held and state is TaskState.WAITING:
        states = (TaskState.WAITING, TaskState.QUEUING)
    elif held and state is TaskState.QUEUING:
        return [], held
    return statements.list_tasks(connection, account_id, limit=limit, before=before, states=states), held


def running_count(connection: Connection, account_id: str) -> int:
    return statements.running_count(connection, account_id)


def running_now(db: Database, account_id: str) -> int:
    """`running_count` as a read of its own (quick enough for the event loop)."""
    return statements.running_now(db, account_id)


def count_by_state(connection: Connection) -> dict[TaskState, int]:
    return statements.count_by_state(connection)


def oldest_queued_at(connection: Connection) -> int | None:
    return statements.oldest_queued_at(connection)


# Claiming.

_CLAIMS: dict[Stage, Move] = {Stage.INTAKE: Move.CLAIM_INTAKE, Stage.GENERATE: Move.CLAIM_GENERATE}


def listen_for_work(db: Database, on_work: Callable[[frozenset[Stage]], None]) -> Listener | None:
    """A listener (not started) that calls `on_work` with the stages whose claims may find
    something new, whichever process made it so; None on a database without notifications
    (SQLite)."""

    def heard(payload: str) -> None:
        named = set(payload.split(",")) if payload else None  # nothing named: all may have changed
        on_work(
            frozenset(
                stage
                for stage, how in _CLAIMS.items()
                if named is None or not named.isdisjoint(source.value for source in how.sources)
            )
        )

    return db.listen(TASKS_CHANNEL, heard)


def claim_next(
    db: Database,
    stage: Stage,
    worker_id: str,
    now: int,
    lease_ms: int,
    max_running_per_account: int,
    max_intakes_per_account: int | None = None,
    models: frozenset[str] | None = None,
    *,
    look_first: bool = True,
) -> Claim | None:
    """Take the next task ready for `stage`, or None when there is none: for generation the
    oldest, for intake the oldest of the account with the fewest intakes in flight. A worker
    serving only some `models` takes only their tasks.

    A quick read first (`look_first`): idle workers, woken for every new task whatever its
    stage, take no write lock (SQLite's one writer) when nothing waits for their stage. A
    worker that has just finished a task skips it: while there is a backlog the read only
    costs a round trip.
    """
    if look_first and not statements.any_ready(db, _CLAIMS[stage], now, models):
        return None
    full: list[str] = []  # accounts found without a slot once locked: passed over from then on
    while True:
        try:
            with db.write() as connection:
                task = statements.claim(
                    connection,
                    db.dialect,
                    _CLAIMS[stage],
                    worker_id,
                    now,
                    lease_ms,
                    max_running_per_account,
                    max_intakes_per_account,
                    models,
                    full,
                )
        except statements.AccountFull as refused:  # rolled back: the candidate is free again
            full.append(refused.account_id)
            continue
        return None if task is None else Claim(task, task.attempt, stage)


# While working.


def heartbeat(
    db: Database, task_id: str, attempt: int, now: int, lease_ms: int, progress: int | None = None
) -> Pulse:
    """Renew the lease (and record progress); tells the worker whether to go on."""
    return heartbeat_all(db, [Lease(task_id, attempt, progress)], now, lease_ms)[task_id]


def heartbeat_all(db: Database, leases: Sequence[Lease], now: int, lease_ms: int) -> dict[str, Pulse]:
    """Renew every lease a worker holds in one statement; what each task's worker must do next.

    Progress is clamped to 0..99 (100 is the finish's to write).
    """
    shown = [
        Lease(
            lease.task_id, lease.attempt, None if lease.progress is None else max(0, min(99, lease.progress))
        )
        for lease in leases
    ]
    with db.write() as connection:
        held_now = statements.renew_leases(connection, shown, now, lease_ms)
    return {
        lease.task_id: Pulse(
            owned=lease.task_id in held_now, cancel_requested=held_now.get(lease.task_id, False)
        )
        for lease in leases
    }


def save_engine_state(db: Database, claim: Claim, state: Mapping[str, str], now: int) -> bool:
    """Keep what the engine needs to resume this task; False if the claim was lost."""
    saved = json.dumps(dict(state), separators=(",", ":"))
    with db.write() as connection:
        return statements.save_engine_state(connection, claim.task.id, claim.attempt, saved, now)


def mark_ready(db: Database, claim: Claim, input_key: str | None, now: int) -> bool:
    """An intake finished: the task joins the queue. False if the claim was lost meanwhile."""
    where = _held_uncanceled(claim)
    with db.write() as connection:
        return (
            statements.move(connection, Move.INTAKE_DONE, where, now, input_key=input_key, **UNLEASED)
            is not None
        )


def finish_success(db: Database, claim: Claim, result: Mapping[str, str], now: int) -> bool:
    """Record the result and queue the callback; the credits stay spent. False if the claim was lost."""
    files = json.dumps(dict(result), separators=(",", ":"))
    with db.write() as connection:
        moved = statements.move(
            connection,
            Move.SUCCEED,
            held(claim.task.id, claim.attempt),
            now,
            progress=100,
            result_json=files,
            completed_at=now,
            **UNLEASED,
        )
        if moved is None:
            return False
        if moved.callback_url:
            enqueue_callback(connection, moved.id, moved.account_id, moved.callback_url, now)
        return True


def finish_failure(db: Database, claim: Claim, code: FailCode, message: str, now: int) -> bool:
    """Fail the claimed task and refund it. False if the claim was lost."""
    with db.write() as connection:
        return _fail(connection, Move.FAIL, held(claim.task.id, claim.attempt), code, message, now)


def release(db: Database, claim: Claim, now: int) -> bool:
    """Give a claimed task back unfinished (the worker is shutting down); no attempt is spent."""
    with db.write() as connection:
        moved = statements.move(
            connection, Move.RELEASE, _held_uncanceled(claim), now, progress=0, **UNLEASED
        )
        return moved is not None


def retry(db: Database, claim: Claim, now: int, max_attempts: int) -> bool:
    """Put a task whose attempt broke down midway (its engine's process died) back in the queue,
    the attempt counted as the reaper counts a vanished worker's. False when it was the last
    attempt, the owner asked to cancel, or the claim was lost: then the caller fails it."""
    lapses = claim.task.lapses + 1
    if lapses >= max_attempts:
        return False
    with db.write() as connection:
        moved = statements.move(
            connection, Move.REQUEUE, _held_uncanceled(claim), now, lapses=lapses, progress=0, **UNLEASED
        )
        return moved is not None


# From outside the worker.


def cancel_task(db: Database, account_id: str, task_id: str, now: int) -> Task:
    """Cancel an unfinished task: at once when no worker holds it, else at the worker's next frame."""
    with db.write() as connection:
        task = get_task(connection, task_id, account_id)
        if task is None:
            raise TaskNotFound()
        if task.state.is_terminal:
            raise InvalidInput(f"the task has already finished ({task.state.value})")
        unheld = statements.unheld(task_id)
        if not _fail(connection, Move.CANCEL, unheld, FailCode.CANCELED, "canceled by the owner", now):
            statements.request_cancel(connection, task_id, now)
        task = get_task(connection, task_id)
        assert task is not None
        return task


@dataclass(frozen=True, slots=True)
class Reaped:
    requeued: list[str]
    failed: list[str]


def reap(db: Database, now: int, max_attempts: int) -> Reaped:
    """Put back tasks whose worker vanished; fail those out of attempts or past their deadline.

    The rows it looks at are locked for its transaction (another reaper skips them), and a
    task counts as requeued or failed only when its change matched.
    """
    requeued: list[str] = []
    failed: list[str] = []
    with db.write() as connection:
        for task_id in statements.lock_overdue(connection, db.dialect, now):
            message = "the task ran past its deadline"
            if _fail(connection, Move.EXPIRE, statements.by_id(task_id), FailCode.TIMED_OUT, message, now):
                failed.append(task_id)
        for lapsed in statements.lock_lapsed(connection, db.dialect, now):
            where = still_lapsed(lapsed.id, now)
            if lapsed.cancel_requested:
                if _fail(connection, Move.ABANDON, where, FailCode.CANCELED, "canceled by the owner", now):
                    failed.append(lapsed.id)
            elif lapsed.lapses + 1 >= max_attempts:
                message = f"the worker running this task stopped {lapsed.lapses + 1} times"
                if _fail(
                    connection, Move.ABANDON, where, FailCode.INTERNAL, message, now, lapses=lapsed.lapses + 1
                ):
                    failed.append(lapsed.id)
            elif statements.move(
                connection, Move.REQUEUE, where, now, lapses=lapsed.lapses + 1, progress=0, **UNLEASED
            ):
                requeued.append(lapsed.id)
    return Reaped(requeued, failed)


# Helpers.


def _held_uncanceled(claim: Claim) -> statements.Condition:
    return statements.uncanceled(held(claim.task.id, claim.attempt))


def _fail(
    connection: Connection,
    how: Move,
    where: statements.Condition,
    code: FailCode,
    message: str,
    now: int,
    lapses: int | None = None,
) -> bool:
    """Fail the one task matching `where` by `how`, refund it and queue its callback, once."""
    extra = {} if lapses is None else {"lapses": lapses}
    moved: Moved | None = statements.fail(connection, how, where, code.value, message, now, **extra)
    if moved is None:
        return False
    credits.refund(connection, moved.account_id, moved.id, moved.price, now)
    if moved.callback_url:
        enqueue_callback(connection, moved.id, moved.account_id, moved.callback_url, now)
    return True


__all__ = ["UNFINISHED", "Claim", "Lease", "NewTask", "Pulse", "Reaped", "Stage"]
