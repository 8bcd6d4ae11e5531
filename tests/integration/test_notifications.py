"""On PostgreSQL, work made in one process wakes the idle workers of every other at once."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.http import ImageHost
from tests.support.polling import wait_for
from tests.support.service import running_app

from kinema.accounts import keys
from kinema.store.database import Database
from kinema.store.dialects import announce
from kinema.store.notices import Listener
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask, Stage

#: Far longer than any wait below: a claim that comes in time came from a notification.
SLOW_POLL_S = 300


@pytest.fixture
def postgres_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("notifications are PostgreSQL's; SQLite's workers find work by a read at each poll")
    return database_url


def test_a_listener_hears_every_announcement_and_starts_by_waking_its_owner(postgres_url: str) -> None:
    db = Database(postgres_url)
    heard = threading.Semaphore(0)
    listener = db.listen("kinema_test_channel", lambda payload: heard.release())
    assert listener is not None
    listener.start()
    try:
        assert heard.acquire(timeout=10), "the wake-up on connecting"
        assert listener.listening
        with db.write() as connection:
            announce(connection, "kinema_test_channel")
            assert not heard.acquire(timeout=0.2), "announced before its transaction committed"
        assert heard.acquire(timeout=10)
    finally:
        listener.stop()
        db.dispose()
    assert not listener.listening


def test_sqlite_has_no_listener(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'kinema.db'}")
    assert db.listen("kinema_tasks", lambda payload: None) is None
    db.dispose()


def _listeners(db: Database) -> int:
    with db.read() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                )
            ).scalar_one()
        )


def test_a_task_created_on_another_replica_is_claimed_without_waiting_for_a_poll(
    make_settings: MakeSettings, postgres_url: str, image_server: ImageHost, sample_jpeg: bytes
) -> None:
    image = image_server.add("/a.jpg", sample_jpeg)
    worker_settings = make_settings(workers=1, poll_seconds=SLOW_POLL_S)
    with running_app(worker_settings), running_app(make_settings(workers=0)) as replica:
        db = Database(postgres_url)
        try:
            wait_for(lambda: _listeners(db) == 1, what="the worker to listen")
            first = replica.api.create(seed_body(image))
            replica.api.wait_state(first, "success", timeout_s=30)

            # The listener's connection is cut: it connects again, and hears the next task.
            with db.write() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                    )
                )
            wait_for(lambda: _listeners(db) == 1, what="the worker to listen again")
            second = replica.api.create(seed_body(image))
            replica.api.wait_state(second, "success", timeout_s=30)
        finally:
            db.dispose()


def test_listener_connects_again_for_as_long_as_it_runs(postgres_url: str) -> None:
    db = Database(postgres_url)
    heard = threading.Semaphore(0)
    listener = Listener(db.url, "kinema_test_channel", lambda payload: heard.release(), retry_s=0.05)
    listener.start()
    try:
        assert heard.acquire(timeout=10)
        for _ in range(2):
            with db.write() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                    )
                )
            assert heard.acquire(timeout=10), "the wake-up after connecting again"
    finally:
        listener.stop()
        db.dispose()


def test_a_notice_wakes_only_the_stages_that_may_find_work(postgres_url: str) -> None:
    """A task queued with nothing to fetch wakes generation alone; one with an image to fetch,
    intake alone; an intake done, both (the task is queued, and the account's intake is free);
    a finished generation frees a running slot, which concerns generation alone."""
    db = Database(postgres_url)
    db.migrate()
    heard: queue.Queue[frozenset[Stage]] = queue.Queue()
    listener = lifecycle.listen_for_work(db, heard.put)
    assert listener is not None
    listener.start()
    try:
        assert heard.get(timeout=10) == frozenset(Stage), "the wake-up on connecting: anything"
        with db.write() as connection:
            account = keys.open_account(connection, "notices", 100, 1).record.account_id
        for ready, woken in ((True, {Stage.GENERATE}), (False, {Stage.INTAKE})):
            new = NewTask(model="m", param="{}", input={}, callback_url=None, price=1, ready=ready)
            with db.write() as connection:
                task = lifecycle.create_task(connection, account, new, 1, 60_000)
            assert heard.get(timeout=10) == woken
        claim = lifecycle.claim_next(db, Stage.INTAKE, "w", 2, 60_000, 10)
        assert claim is not None
        assert claim.task.id == task.id
        assert lifecycle.mark_ready(db, claim, None, 3)
        assert heard.get(timeout=10) == frozenset(Stage)
        claim = lifecycle.claim_next(db, Stage.GENERATE, "w", 4, 60_000, 10)
        assert claim is not None
        assert lifecycle.finish_success(db, claim, {"video": "v", "first_frame": "f", "last_frame": "l"}, 5)
        assert heard.get(timeout=10) == {Stage.GENERATE}
        assert heard.empty()
    finally:
        listener.stop()
        db.dispose()
