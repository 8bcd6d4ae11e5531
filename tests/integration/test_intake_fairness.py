"""Intake is concurrent and fair between accounts: slow image hosts delay only their own tasks."""

from __future__ import annotations

from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.http import ImageHost, TricklingHost
from tests.support.polling import wait_for
from tests.support.service import running_app

from kinema.accounts import keys
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask, Stage

T0 = 1_700_000_000_000
LEASE = 30_000
TIMEOUT = 3_600_000


def _account(db: Database, name: str) -> str:
    with db.write() as connection:
        return keys.open_account(connection, name, 1000, T0).record.account_id


def _waiting_task(db: Database, account_id: str, now: int) -> str:
    new = NewTask("m", "{}", {"prompt": "p"}, None, 30, ready=False)
    with db.write() as connection:
        return lifecycle.create_task(connection, account_id, new, now, TIMEOUT).id


def _intake(db: Database, cap: int | None = None) -> str | None:
    claim = lifecycle.claim_next(db, Stage.INTAKE, "w", T0 + 10, LEASE, 10, cap)
    return None if claim is None else claim.task.id


def test_an_intake_claim_prefers_the_account_with_the_fewest_intakes_in_flight(db: Database) -> None:
    busy, other = _account(db, "busy"), _account(db, "other")
    first, second, third = (_waiting_task(db, busy, T0 + n) for n in range(3))
    late = _waiting_task(db, other, T0 + 5)
    assert _intake(db) == first
    # `busy` has one intake in flight, `other` none: the later task of `other` goes first.
    assert _intake(db) == late
    assert [_intake(db), _intake(db), _intake(db)] == [second, third, None]


def test_an_account_at_its_intake_cap_waits_while_others_are_taken(db: Database) -> None:
    busy, other = _account(db, "busy"), _account(db, "other")
    first, second, _third = (_waiting_task(db, busy, T0 + n) for n in range(3))
    assert [_intake(db, cap=2), _intake(db, cap=2)] == [first, second]
    assert _intake(db, cap=2) is None  # `busy` holds its two
    late = _waiting_task(db, other, T0 + 5)
    assert _intake(db, cap=2) == late


def test_tasks_on_slow_hosts_leave_another_accounts_task_to_reach_the_queue(
    make_settings: MakeSettings, slow_host: TricklingHost, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    settings = make_settings(workers=1, intake_threads=3, intakes_per_account=2, max_running_per_account=1)
    with running_app(settings) as running:
        slow = running.api
        for _ in range(4):
            slow.create(seed_body(slow_host.url, duration="6"))
        other = running.open_account(name="other")
        try:
            wait_for(lambda: slow_host.held >= 1, what="a slow task's image to be fetched")
            other_id = other.create(seed_body(image_server.add("/cat.jpg", sample_jpeg)))
            other.wait_state(other_id, "queuing", "generating", "success", timeout_s=20)
            # Two of the slow tasks are fetched, a byte at a time; the others wait their turn.
            wait_for(lambda: slow_host.held == 2, what="two slow tasks' images to be fetched")
            assert slow_host.started == 2
        finally:
            slow_host.release()
