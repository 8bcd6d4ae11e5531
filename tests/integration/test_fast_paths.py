"""The fast paths answer exactly what SQLAlchemy answers: same columns, same values, same types.

`Database.first` reads SQLite through its driver and `run` writes through it; both must be
indistinguishable from the same statement through SQLAlchemy, on both databases.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, select, update

from kinema.accounts import keys
from kinema.domain.task import Task, TaskState
from kinema.store import callbacks, credits, idempotency, tasks
from kinema.store.database import Database
from kinema.store.schema import tasks as tasks_table
from kinema.store.tasks import POLL, RUNNING

T0 = 1_700_000_000_000


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    """An account, its key, a task asked to cancel, and a remembered Idempotency-Key."""
    with db.write() as connection:
        new = keys.open_account(connection, "fast", 100, T0)
        task = Task(
            id="ab" * 16,
            account_id=new.record.account_id,
            model="m",
            state=TaskState.GENERATING,
            param="{}",
            input={"prompt": "p"},
            callback_url=None,
            price=30,
            progress=0,
            result=None,
            fail_code="",
            fail_msg="",
            attempt=0,
            lapses=0,
            cancel_requested=False,
            created_at=T0,
            updated_at=T0,
            started_at=None,
            completed_at=None,
            deadline_at=T0 + 60_000,
            input_key=None,
        )
        tasks.insert_task(connection, task)
        connection.execute(update(tasks_table).values(cancel_requested=True, lease_owner="w", attempt=1))
        idempotency.claim_key(
            connection, db.dialect, new.record.account_id, "order-1", "d" * 64, task.id, T0, 60_000
        )
        callbacks.insert_delivery(connection, "c" * 32, task.id, new.record.account_id, "http://h/cb", T0)
    return {
        "key_hash": keys.hash_key(new.secret),
        "task_id": task.id,
        "account_id": new.record.account_id,
        "key": "order-1",
        "now": T0,
    }


FAST_READS: dict[str, tuple[Select[Any], tuple[str, ...]]] = {
    "poll": (POLL, ("key_hash", "task_id")),
    "poll, not the caller's task": (POLL, ("key_hash",)),
    "running": (RUNNING, ("account_id",)),
    "live key": (keys.statements.LIVE_KEY, ("key_hash",)),
    "idempotency key": (idempotency.EARLIER, ("account_id", "key", "now")),
    "balance": (credits.BALANCE, ("account_id",)),
    "due delivery": (callbacks.DUE, ("now",)),
}


@pytest.mark.parametrize("name", FAST_READS)
def test_a_fast_read_gives_the_row_sqlalchemy_gives(db: Database, world: dict[str, Any], name: str) -> None:
    statement, names = FAST_READS[name]
    params = {key: world[key] for key in names} | {
        missing: "nobody" for missing in ("task_id",) if missing not in names
    }
    fast = db.first(statement, params)
    with db.read() as connection:
        found = connection.execute(statement, params).mappings().first()
    assert found is not None
    assert fast is not None
    slow = dict(found)
    assert fast == slow
    assert {key: type(value) for key, value in fast.items()} == {
        key: type(value) for key, value in slow.items()
    }
    if statement is POLL and params["task_id"] == world["task_id"]:
        assert fast["cancel_requested"] is True  # a bool, not the driver's 1


def test_a_row_written_on_the_fast_path_reads_as_one_written_through_sqlalchemy(db: Database) -> None:
    with db.write() as connection:
        account_id = keys.open_account(connection, "fast", 0, T0).record.account_id
        base = {
            "account_id": account_id,
            "model": "m",
            "state": TaskState.QUEUING.value,
            "param": '{"a":"é"}',
            "input_json": "{}",
            "callback_url": None,
            "price": 0,
            "input_key": None,
            "created_at": T0,
            "deadline_at": T0 + 1,
        }
        tasks.run(connection, tasks._INSERT, base | {"id": "fast"})
        connection.execute(tasks._INSERT, base | {"id": "slow"})
    with db.read() as connection:
        rows = {
            row["id"]: {key: value for key, value in row.items() if key != "id"}
            for row in connection.execute(select(tasks_table)).mappings()
        }
    assert rows["fast"] == rows["slow"]
