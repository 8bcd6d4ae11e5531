"""The task lifecycle on a real database (SQLite and PostgreSQL), with time passed in."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from psycopg.sql import Literal
from sqlalchemy import Connection, Select, text
from tests.support.databases import DIALECTS, PostgresTemplates, empty_database_url
from tests.support.polling import wait_for

from kinema.accounts import credits, keys
from kinema.domain.task import FailCode, TaskState
from kinema.domain.transitions import Move
from kinema.store import tasks as statements
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import Claim, NewTask, Stage

T0 = 1_700_000_000_000
LEASE = 30_000
TIMEOUT = 3_600_000


@pytest.fixture
def account(db: Database) -> str:
    with db.write() as connection:
        return keys.open_account(connection, "a", 1000, T0).record.account_id


def _new(db: Database, account_id: str, now: int = T0, ready: bool = True, price: int = 30) -> str:
    new = NewTask("m", "{}", {"prompt": "p"}, None, price, ready)
    with db.write() as connection:
        return lifecycle.create_task(connection, account_id, new, now, TIMEOUT).id


def _claim(
    db: Database, now: int = T0, stage: Stage = Stage.GENERATE, cap: int = 10, worker: str = "w"
) -> Claim:
    claim = lifecycle.claim_next(db, stage, worker, now, LEASE, cap)
    assert claim is not None
    return claim


def _task(db: Database, task_id: str) -> lifecycle.Task:
    with db.read() as connection:
        task = lifecycle.get_task(connection, task_id)
    assert task is not None
    return task


def _balance(db: Database, account_id: str) -> int:
    with db.read() as connection:
        value = credits.balance(connection, account_id)
        assert value == credits.ledger_sum(connection, account_id)
        return value


def test_creating_reserves_the_price(db: Database, account: str) -> None:
    task_id = _new(db, account)
    assert _task(db, task_id).state is TaskState.QUEUING
    assert _balance(db, account) == 970
    assert _task(db, _new(db, account, ready=False)).state is TaskState.WAITING


def test_claims_take_the_oldest_and_never_twice(db: Database, account: str) -> None:
    first = _new(db, account, now=T0)
    second = _new(db, account, now=T0 + 1)
    claim = _claim(db)
    assert claim.task.id == first
    assert claim.attempt == 1
    assert claim.task.state is TaskState.GENERATING
    assert claim.task.started_at == T0
    assert _claim(db).task.id == second
    assert lifecycle.claim_next(db, Stage.GENERATE, "w", T0, LEASE, 10) is None


def test_intake_keeps_the_task_waiting_until_ready(db: Database, account: str) -> None:
    task_id = _new(db, account, ready=False)
    assert lifecycle.claim_next(db, Stage.GENERATE, "w", T0, LEASE, 10) is None
    claim = _claim(db, stage=Stage.INTAKE)
    assert claim.task.state is TaskState.WAITING
    assert lifecycle.claim_next(db, Stage.INTAKE, "w", T0, LEASE, 10) is None
    assert lifecycle.mark_ready(db, claim, "inputs/x.png", T0 + 5)
    task = _task(db, task_id)
    assert task.state is TaskState.QUEUING
    assert task.input_key == "inputs/x.png"
    assert _claim(db).attempt == 2


def test_success_keeps_the_credits(db: Database, account: str) -> None:
    task_id = _new(db, account)
    claim = _claim(db)
    assert lifecycle.finish_success(db, claim, {"video": "v.mp4"}, T0 + 2150)
    task = _task(db, task_id)
    assert task.state is TaskState.SUCCESS
    assert task.credits_consumed == 30
    assert task.cost_time_ms == 2150
    assert _balance(db, account) == 970
    assert not lifecycle.finish_failure(db, claim, FailCode.INTERNAL, "late", T0 + 3000)
    assert _balance(db, account) == 970


def test_failure_refunds_once(db: Database, account: str) -> None:
    task_id = _new(db, account)
    claim = _claim(db)
    assert lifecycle.finish_failure(db, claim, FailCode.GENERATION_FAILED, "no", T0 + 10)
    assert not lifecycle.finish_failure(db, claim, FailCode.GENERATION_FAILED, "no", T0 + 11)
    task = _task(db, task_id)
    assert (task.state, task.fail_code, task.fail_msg, task.credits_consumed) == (
        TaskState.FAIL,
        "501",
        "no",
        0,
    )
    assert _balance(db, account) == 1000


def test_heartbeat_renews_the_lease(db: Database, account: str) -> None:
    task_id = _new(db, account)
    claim = _claim(db)
    pulse = lifecycle.heartbeat(db, task_id, claim.attempt, T0 + 20_000, LEASE, progress=40)
    assert pulse.owned
    assert not pulse.cancel_requested
    # The lease now runs to T0 + 50 s, so a reaper at T0 + 40 s leaves the task alone.
    assert lifecycle.reap(db, T0 + 40_000, max_attempts=3).requeued == []
    assert _task(db, task_id).progress == 40


def test_one_heartbeat_renews_every_lease_a_worker_holds_and_says_what_became_of_each(
    db: Database, account: str
) -> None:
    lost = _new(db, account)
    stale = _claim(db, worker="gone")
    assert lifecycle.reap(db, T0 + LEASE, max_attempts=3).requeued == [lost]
    kept, canceled = _new(db, account, now=T0 + LEASE), _new(db, account, now=T0 + LEASE + 1)
    now = T0 + LEASE + 2
    assert _claim(db, now=now, worker="new").task.id == lost
    claims = {claim.task.id: claim for claim in (_claim(db, now=now), _claim(db, now=now))}
    lifecycle.cancel_task(db, account, canceled, now)

    pulses = lifecycle.heartbeat_all(
        db,
        [
            lifecycle.Lease(kept, claims[kept].attempt, progress=120),
            lifecycle.Lease(canceled, claims[canceled].attempt),
            lifecycle.Lease(lost, stale.attempt, progress=50),
        ],
        now + 10_000,
        LEASE,
    )
    assert pulses == {
        kept: lifecycle.Pulse(owned=True, cancel_requested=False),
        canceled: lifecycle.Pulse(owned=True, cancel_requested=True),
        lost: lifecycle.Pulse(owned=False, cancel_requested=False),
    }
    assert (_task(db, kept).progress, _task(db, lost).progress) == (99, 0)
    # Both held leases now run to now + 40 s; the lost task's newer lease was left as it was.
    assert lifecycle.reap(db, now + LEASE + 5_000, max_attempts=3).requeued == [lost]
    assert lifecycle.heartbeat_all(db, [], now, LEASE) == {}


def test_a_vanished_worker_is_reaped_and_fenced_out(db: Database, account: str) -> None:
    task_id = _new(db, account)
    stale = _claim(db, worker="gone")
    reaped = lifecycle.reap(db, T0 + LEASE, max_attempts=3)
    assert reaped.requeued == [task_id]
    task = _task(db, task_id)
    assert (task.state, task.lapses, task.progress) == (TaskState.QUEUING, 1, 0)

    fresh = _claim(db, now=T0 + LEASE + 1, worker="new")
    assert fresh.attempt == stale.attempt + 1
    # The old worker comes back to life: everything it tries is refused.
    assert not lifecycle.heartbeat(db, task_id, stale.attempt, T0 + LEASE + 2, LEASE).owned
    assert not lifecycle.finish_success(db, stale, {"video": "old.mp4"}, T0 + LEASE + 3)
    assert not lifecycle.finish_failure(db, stale, FailCode.INTERNAL, "old", T0 + LEASE + 3)
    assert lifecycle.finish_success(db, fresh, {"video": "new.mp4"}, T0 + LEASE + 4)
    task = _task(db, task_id)
    assert task.result == {"video": "new.mp4"}
    assert _balance(db, account) == 970


def test_out_of_attempts_fails_and_refunds(db: Database, account: str) -> None:
    task_id = _new(db, account)
    now = T0
    for lapse in range(1, 3):
        _claim(db, now=now)
        now += LEASE
        assert lifecycle.reap(db, now, max_attempts=3).requeued == [task_id]
        assert _task(db, task_id).lapses == lapse
    _claim(db, now=now)
    now += LEASE
    assert lifecycle.reap(db, now, max_attempts=3).failed == [task_id]
    task = _task(db, task_id)
    assert (task.state, task.fail_code) == (TaskState.FAIL, "500")
    assert "stopped 3 times" in task.fail_msg
    assert _balance(db, account) == 1000


def test_a_retry_after_a_crash_spends_an_attempt_until_none_is_left(db: Database, account: str) -> None:
    task_id = _new(db, account)
    first = _claim(db)
    assert lifecycle.retry(db, first, T0 + 10, max_attempts=3)
    task = _task(db, task_id)
    assert (task.state, task.lapses, task.progress, task.lease_owner) == (TaskState.QUEUING, 1, 0, None)
    assert not lifecycle.retry(db, first, T0 + 11, max_attempts=3)  # a stale claim
    second = _claim(db, now=T0 + 20)
    assert second.attempt == 2
    assert lifecycle.retry(db, second, T0 + 30, max_attempts=3)
    third = _claim(db, now=T0 + 40)
    assert not lifecycle.retry(db, third, T0 + 50, max_attempts=3)  # the last attempt: the caller fails it
    assert _task(db, task_id).state is TaskState.GENERATING


def test_a_canceled_task_is_not_retried(db: Database, account: str) -> None:
    task_id = _new(db, account)
    claim = _claim(db)
    lifecycle.cancel_task(db, account, task_id, T0 + 1)
    assert not lifecycle.retry(db, claim, T0 + 2, max_attempts=3)
    assert _task(db, task_id).state is TaskState.GENERATING


def test_the_deadline_fails_with_504(db: Database, account: str) -> None:
    queued = _new(db, account)
    running = _new(db, account, now=T0 + 1)
    claim = _claim(db)
    assert claim.task.id == queued
    lifecycle.heartbeat(db, queued, claim.attempt, T0 + TIMEOUT - 1, LEASE)
    reaped = lifecycle.reap(db, T0 + TIMEOUT + 1, max_attempts=3)
    assert sorted(reaped.failed) == sorted([queued, running])
    assert {_task(db, queued).fail_code, _task(db, running).fail_code} == {"504"}
    assert _balance(db, account) == 1000


def test_the_running_cap_holds_an_accounts_extra_tasks(db: Database, account: str) -> None:
    with db.write() as connection:
        other = keys.open_account(connection, "b", 1000, T0).record.account_id
    a1 = _new(db, account, now=T0)
    _new(db, account, now=T0 + 1)
    b1 = _new(db, other, now=T0 + 2)
    assert _claim(db, cap=1).task.id == a1
    assert _claim(db, cap=1).task.id == b1
    assert lifecycle.claim_next(db, Stage.GENERATE, "w", T0, LEASE, 1) is None


def test_cancel_before_and_during_work(db: Database, account: str) -> None:
    queued = _new(db, account)
    running = _new(db, account, now=T0 + 1)
    claim = _claim(db)
    assert claim.task.id == queued
    # The queued one was claimed: cancel asks its worker; the other is canceled at once.
    held = lifecycle.cancel_task(db, account, queued, T0 + 5)
    assert held.state is TaskState.GENERATING
    assert held.cancel_requested
    assert lifecycle.heartbeat(db, queued, claim.attempt, T0 + 6, LEASE).cancel_requested
    now_failed = lifecycle.cancel_task(db, account, running, T0 + 7)
    assert (now_failed.state, now_failed.fail_code) == (TaskState.FAIL, "499")
    assert lifecycle.finish_failure(db, claim, FailCode.CANCELED, "canceled by the owner", T0 + 8)
    assert _balance(db, account) == 1000


def test_a_lapsed_cancel_request_is_finished_by_the_reaper(db: Database, account: str) -> None:
    task_id = _new(db, account)
    _claim(db)
    lifecycle.cancel_task(db, account, task_id, T0 + 1)
    assert lifecycle.reap(db, T0 + LEASE, max_attempts=3).failed == [task_id]
    assert _task(db, task_id).fail_code == "499"


def test_parallel_claims_never_share_a_task(db: Database, account: str) -> None:
    created = {_new(db, account, now=T0 + n) for n in range(12)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all() -> None:
        while claim := lifecycle.claim_next(
            db, Stage.GENERATE, threading.current_thread().name, T0, LEASE, 100
        ):
            with lock:
                claimed.append(claim.task.id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(created)


def test_an_account_full_by_the_time_it_is_locked_is_passed_over(db: Database, account: str) -> None:
    """Two claimers at once on an account's last slot (PostgreSQL: SQLite has one writer, so
    its claims never overlap). The second saw the slot free, locked the account's next task and
    waited for the account; once the first commits it counts again, lets that task go and takes
    another account's."""
    if db.is_sqlite:
        pytest.skip("SQLite's claims take its one write lock: they never overlap")
    with db.write() as connection:
        other = keys.open_account(connection, "b", 1000, T0).record.account_id
    first, second = _new(db, account, now=T0), _new(db, account, now=T0 + 1)
    others = _new(db, other, now=T0 + 2)
    taken: list[Claim | None] = []
    with db.write() as connection:
        held = statements.claim(connection, db.dialect, Move.CLAIM_GENERATE, "w1", T0, LEASE, 1)
        assert held is not None
        assert held.id == first
        racer = threading.Thread(
            target=lambda: taken.append(
                lifecycle.claim_next(db, Stage.GENERATE, "w2", T0, LEASE, 1, look_first=False)
            )
        )
        racer.start()
        wait_for(lambda: _waiting_for_an_account(db), what="the second claimer to wait for the account")
    racer.join(30)
    assert not racer.is_alive()
    assert taken[0] is not None
    assert taken[0].task.id == others
    assert _task(db, second).state is TaskState.QUEUING
    assert _task(db, second).lease_owner is None
    assert lifecycle.claim_next(db, Stage.GENERATE, "w3", T0, LEASE, 1) is None


def _waiting_for_an_account(db: Database) -> bool:
    with db.read() as connection:
        waiting = connection.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        ).scalar_one()
    return bool(waiting)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_generation_claim_walks_its_index_even_before_any_statistics(
    dialect: str, tmp_path: Path, postgres_templates: PostgresTemplates | None
) -> None:
    """A new database has no statistics yet (PostgreSQL gathers them a while after a burst); a
    planner guessing that a handful of tasks wait gathers every queued one, checks each one's
    account and sorts them all, on every claim, where the claim index's order gives the oldest
    at once."""
    with empty_database_url(dialect, tmp_path, postgres_templates) as url:
        db = Database(url)
        try:
            db.migrate()
            with db.write() as connection:
                funded = keys.open_account(connection, "a", 0, T0).record.account_id
                made = [
                    lifecycle.create_task(
                        connection, funded, NewTask("m", "{}", {}, None, 0, True), T0 + n, TIMEOUT
                    ).id
                    for n in range(2000)
                ]
            candidate = statements.candidates(db.dialect, Move.CLAIM_GENERATE, capped=True, some_models=False)
            with db.write() as connection:
                db.dialect.follow_index_order(connection)
                plan = _plan(db, connection, candidate)
            sorts = "TEMP B-TREE" if db.is_sqlite else "Sort"
            assert sorts not in plan, plan
            assert _claim(db, cap=2).task.id == made[0]
        finally:
            db.dispose()


def test_an_intake_claim_counts_each_accounts_intakes_in_flight_from_their_own_index(db: Database) -> None:
    """An intake claim counts, for every waiting task, the intakes its account has in flight:
    from the index of those alone, not by visiting each of the account's waiting tasks."""
    if db.is_sqlite:
        pytest.skip("SQLite's planner counts them through (account_id, state) still")
    with db.write() as connection:
        owners = [keys.open_account(connection, f"a{n}", 0, T0).record.account_id for n in range(4)]
        for n in range(400):
            lifecycle.create_task(
                connection, owners[n % 4], NewTask("m", "{}", {}, None, 0, False), T0 + n, TIMEOUT
            )
        connection.exec_driver_sql("ANALYZE tasks")
    candidate = statements.candidates(db.dialect, Move.CLAIM_INTAKE, capped=True, some_models=False)
    with db.read() as connection:
        # As a worker's claim runs once prepared: one plan for any parameters.
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        plan = _plan(db, connection, candidate)
    assert "ix_tasks_account_id_intakes" in plan, plan


CLAIM_PARAMS = {"now": T0, "skipped": ["-"], "cap": 2}
#: A named parameter as SQLAlchemy writes it for psycopg.
NAMED = re.compile(r"%\((\w+)\)s")


def _plan(db: Database, connection: Connection, statement: Select[Any]) -> str:
    """The plan of a claim's `statement` as the database runs it, its parameters bound."""
    expanded = statement.compile(connection).construct_expanded_state(CLAIM_PARAMS)
    if db.is_sqlite:
        values = tuple(expanded.parameters[name] for name in expanded.positiontup or ())
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {expanded.statement}", values)
        return "\n".join(row[3] for row in rows)
    # PostgreSQL: prepared with $n placeholders, then the plan of running it.
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    connection.exec_driver_sql(f"PREPARE claim AS {NAMED.sub(placeholder, expanded.statement)}")
    driver = connection.connection.driver_connection
    arguments = ", ".join(Literal(expanded.parameters[name]).as_string(driver) for name in names)
    return "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN EXECUTE claim({arguments})"))
