"""The task lifecycle as a state machine, driven by Hypothesis on a real database, time passed in.

Any sequence of submits, claims, heartbeats, finishes, failures, releases, cancels, reaps and
clock steps keeps the invariants: every balance equals the sum of its ledger; a task is
refunded at most once (and only if it failed); a finished task never changes; at most one
claim of a task is live, and a write with a claim that is not live changes nothing; every change
of state is one the transition table allows.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from kinema.accounts import credits, keys
from kinema.domain.errors import InsufficientCredits, InvalidInput, KinemaError
from kinema.domain.task import FailCode, Task, TaskState
from kinema.domain.transitions import is_allowed
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import Claim, NewTask, Stage

T0 = 1_700_000_000_000
LEASE = 30_000
TIMEOUT = 600_000
CAP = 2
MAX_ATTEMPTS = 3


def make_machine(db: Database) -> type[RuleBasedStateMachine]:
    class TaskLifecycle(RuleBasedStateMachine):
        tasks = Bundle("tasks")
        claims = Bundle("claims")

        @initialize()
        def open_account(self) -> None:
            self.now = T0
            with db.write() as connection:
                self.account = keys.open_account(connection, "machine", 200, self.now).record.account_id
            self.seen: dict[str, Task] = {}
            self.made: list[Claim] = []

        # Steps.

        @rule(target=tasks, price=st.sampled_from([0, 30, 50, 90]), ready=st.booleans())
        def submit(self, price: int, ready: bool) -> str:
            new = NewTask("m", "{}", {"prompt": "p"}, "https://receiver.example/hook", price, ready)
            try:
                with db.write() as connection:
                    return lifecycle.create_task(connection, self.account, new, self.now, TIMEOUT).id
            except InsufficientCredits:
                return ""

        @rule(target=claims, stage=st.sampled_from(Stage), worker=st.sampled_from(["w1", "w2"]))
        def claim(self, stage: Stage, worker: str) -> Claim | None:
            claim = lifecycle.claim_next(db, stage, worker, self.now, LEASE, CAP)
            if claim is not None:
                self.made.append(claim)
            return claim

        @rule(claim=claims, progress=st.integers(0, 120))
        def heartbeat(self, claim: Claim | None, progress: int) -> None:
            if claim is not None:
                with self.fenced(claim):
                    lifecycle.heartbeat(db, claim.task.id, claim.attempt, self.now, LEASE, progress)

        @rule(claim=claims)
        def intake_done(self, claim: Claim | None) -> None:
            if claim is not None:
                with self.fenced(claim):
                    lifecycle.mark_ready(db, claim, None, self.now)

        @rule(claim=claims)
        def succeed(self, claim: Claim | None) -> None:
            if claim is not None:
                with self.fenced(claim):
                    lifecycle.finish_success(db, claim, {"video": f"results/{claim.task.id}/v.mp4"}, self.now)

        @rule(claim=claims, code=st.sampled_from([FailCode.GENERATION_FAILED, FailCode.BAD_INPUT]))
        def fail(self, claim: Claim | None, code: FailCode) -> None:
            if claim is not None:
                with self.fenced(claim):
                    lifecycle.finish_failure(db, claim, code, "no", self.now)

        @rule(claim=claims)
        def release(self, claim: Claim | None) -> None:
            if claim is not None:
                with self.fenced(claim):
                    lifecycle.release(db, claim, self.now)

        @contextlib.contextmanager
        def fenced(self, claim: Claim) -> Iterator[None]:
            """A worker's write with a claim that is no longer live changes nothing."""
            before = self.read(claim.task.id)
            live = before.attempt == claim.attempt and before.lease_owner is not None
            yield
            if not live or before.state.is_terminal:
                assert self.read(claim.task.id) == before, "a stale claim changed its task"

        def read(self, task_id: str) -> Task:
            with db.read() as connection:
                task = lifecycle.get_task(connection, task_id)
            assert task is not None
            return task

        @rule(task_id=tasks)
        def cancel(self, task_id: str) -> None:
            if task_id:
                # A finished task's cancel is refused, and nothing changes.
                with contextlib.suppress(InvalidInput):
                    lifecycle.cancel_task(db, self.account, task_id, self.now)

        @rule()
        def reap(self) -> None:
            lifecycle.reap(db, self.now, MAX_ATTEMPTS)

        @rule(step=st.sampled_from([1, 1_000, LEASE // 2, LEASE + 1, TIMEOUT // 3]))
        def advance(self, step: int) -> None:
            self.now += step

        # What must always hold.

        @invariant()
        def money_and_states_hold(self) -> None:
            with db.read() as connection:
                balance = credits.balance(connection, self.account)
                entries = credits.ledger(connection, self.account)
                tasks = lifecycle.list_tasks(connection, self.account, limit=10_000)
            assert balance == sum(entry.delta for entry in entries)
            assert balance >= 0
            refunds = Counter(entry.task_id for entry in entries if entry.reason is credits.Movement.REFUND)
            for task in tasks:
                assert refunds[task.id] <= 1
                if refunds[task.id]:
                    assert task.state is TaskState.FAIL
                before = self.seen.get(task.id)
                if before is not None:
                    if before.state.is_terminal:
                        assert task == before, "a finished task changed"
                    else:
                        assert task.state is before.state or is_allowed(before.state, task.state)
                self.seen[task.id] = task
            live = Counter(
                claim.task.id
                for claim in self.made
                if (task := self.seen.get(claim.task.id)) is not None
                and task.attempt == claim.attempt
                and not task.state.is_terminal
            )
            assert all(count <= 1 for count in live.values()), "two live claims of one task"

    return TaskLifecycle


def test_no_sequence_of_moves_breaks_the_invariants(db: Database) -> None:
    machine = make_machine(db)
    machine.TestCase.settings = settings(
        max_examples=30 if db.is_sqlite else 15,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    try:
        machine.TestCase().runTest()
    except KinemaError as error:  # pragma: no cover - shown with the failing sequence
        pytest.fail(f"a move raised {error!r}")
