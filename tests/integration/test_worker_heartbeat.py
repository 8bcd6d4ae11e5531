"""A worker process beats once for all its tasks: one thread, one statement, every lease renewed."""

from __future__ import annotations

import threading

from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.http import TricklingHost
from tests.support.polling import wait_for
from tests.support.service import running_app

from kinema.store.database import Database
from kinema.tasks import lifecycle


def _leases(db: Database, task_ids: list[str]) -> list[int | None]:
    with db.read() as connection:
        found = [lifecycle.get_task(connection, task_id) for task_id in task_ids]
    return [None if task is None else task.lease_expires_at for task in found]


def test_every_task_in_flight_is_renewed_by_the_one_heartbeat_of_its_process(
    make_settings: MakeSettings, slow_host: TricklingHost
) -> None:
    settings = make_settings(workers=1, intake_threads=3, intakes_per_account=3, lease_seconds=3)
    with running_app(settings) as running:
        task_ids = [running.api.create(seed_body(slow_host.url)) for _ in range(3)]
        try:
            wait_for(lambda: slow_host.held == 3, what="the three images to be in flight")
            db = Database(settings.database_url)
            try:
                first = _leases(db, task_ids)
                assert None not in first
                # Each lease moves on while its image trickles in: all renewed, none lost.
                wait_for(
                    lambda: all(now > then for now, then in zip(_leases(db, task_ids), first, strict=True)),
                    what="every lease to be renewed",
                )
            finally:
                db.dispose()
            beats = [thread.name for thread in threading.enumerate() if "beat" in thread.name]
            assert beats == ["kinema-heartbeat"]
        finally:
            slow_host.release()
        for task_id in task_ids:
            running.api.wait_state(task_id, "queuing", "generating", "success", timeout_s=30)
