"""Money under concurrency: parallel requests can never spend more than the balance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from tests.conftest import MakeSettings
from tests.support.api import seed_body
from tests.support.engines import InstantEngine
from tests.support.live import live_server

from kinema.accounts import credits, keys
from kinema.api.app import create_app
from kinema.domain.clock import system_clock
from kinema.store.database import Database
from kinema.tasks import lifecycle


def test_fifty_parallel_creates_on_an_account_that_can_afford_ten(make_settings: MakeSettings) -> None:
    settings = make_settings(workers=0)
    db = Database(settings.database_url)
    with db.write() as connection:
        new = keys.open_account(connection, "ten", 10 * 30, system_clock())
    app = create_app(settings, engine=InstantEngine())
    body = seed_body("https://images.example/cat.jpg")
    headers = {"Authorization": f"Bearer {new.secret}"}

    with (
        live_server(app) as base_url,
        httpx.Client(base_url=base_url, timeout=60, limits=httpx.Limits(max_connections=50)) as client,
    ):

        def create(_: int) -> int:
            answer = client.post("/api/v1/jobs/createTask", json=body, headers=headers).json()
            code: int = answer["code"]
            return code

        with ThreadPoolExecutor(max_workers=50) as pool:
            codes = list(pool.map(create, range(50)))

    assert codes.count(200) == 10
    assert codes.count(402) == 40
    with db.read() as connection:
        assert credits.balance(connection, new.record.account_id) == 0
        assert credits.ledger_sum(connection, new.record.account_id) == 0
        entries = credits.ledger(connection, new.record.account_id)
        tasks = lifecycle.list_tasks(connection, new.record.account_id, limit=100)
    assert len(tasks) == 10
    assert len([entry for entry in entries if entry.delta == -30]) == 10
    assert {entry.task_id for entry in entries if entry.task_id} == {task.id for task in tasks}
    db.dispose()
