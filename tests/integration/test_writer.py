"""`LoopWriter`: the event loop's writes, batched into one transaction, never blocking the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Executable, func, insert, select

from kinema.domain.errors import InvalidInput
from kinema.store.database import Database
from kinema.store.schema import accounts
from kinema.store.writer import LoopWriter


def add_account(name: str) -> Callable[[Connection], str]:
    def work(connection: Connection) -> str:
        connection.execute(insert(accounts).values(id=name, name=name, balance=0, created_at=0))
        return name

    return work


def fail_after_writing(connection: Connection) -> None:
    connection.execute(insert(accounts).values(id="undone", name="undone", balance=0, created_at=0))
    raise InvalidInput("refused after writing")


def names(db: Database) -> set[str]:
    with db.read() as connection:
        return set(connection.execute(select(accounts.c.id)).scalars())


def answers_within_deadline(db: Database, statement: Executable | None = None) -> bool | None:
    """Whether `write_at_once` could write (running `statement`), asked from a thread that must
    answer well within SQLite's busy timeout and the pool's wait: it never waits for either."""
    answer: list[bool | None] = []

    def attempt() -> None:
        with db.write_at_once() as connection:
            if connection is not None and statement is not None:
                connection.execute(statement)
            answer.append(None if connection is None else True)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=5)  # a deadline, far below the 10 s busy timeout and the 30 s pool wait
    assert answer, "write_at_once waited"
    return answer[0]


def test_writes_of_one_turn_share_a_transaction_and_a_failure_undoes_only_itself(db: Database) -> None:
    writer = LoopWriter(db)

    async def main() -> tuple[object, ...]:
        return await asyncio.gather(
            writer.write(add_account("a")),
            writer.write(fail_after_writing),
            writer.write(add_account("b")),
            return_exceptions=True,
        )

    first, second, third = asyncio.run(main())
    writer.close()
    assert (first, third) == ("a", "b")
    assert isinstance(second, InvalidInput)
    assert names(db) == {"a", "b"}


def test_a_held_write_lock_sends_the_batch_to_the_thread_and_the_loop_runs_on(
    db: Database,
) -> None:
    if not db.is_sqlite:
        pytest.skip("the write lock is SQLite's")
    assert db.url.database is not None
    other_process = sqlite3.connect(db.url.database, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    writer = LoopWriter(db)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> str:
        ticking = asyncio.create_task(ticker())
        write = asyncio.create_task(writer.write(add_account("late")))
        while ticks < 200:  # the loop turns on while the write waits (else this never ends)
            await asyncio.sleep(0)
        assert not write.done()  # the lock is still held: the thread waits, the loop does not
        other_process.execute("COMMIT")
        result = await asyncio.wait_for(write, timeout=10)
        ticking.cancel()
        return result

    assert asyncio.run(main()) == "late"
    writer.close()
    other_process.close()
    assert ticks >= 200
    assert names(db) == {"late"}


def test_write_at_once_answers_none_while_another_connection_writes(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("the write lock is SQLite's")
    assert db.url.database is not None
    other_process = sqlite3.connect(db.url.database, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    # It answers while the lock is still held: it never waits for the other process.
    assert answers_within_deadline(db) is None
    other_process.execute("COMMIT")
    other_process.close()
    with db.write_at_once() as connection:
        assert connection is not None
        connection.execute(insert(accounts).values(id="now", name="now", balance=0, created_at=0))
    assert names(db) == {"now"}


def test_many_writes_from_many_turns_all_land(db: Database) -> None:
    writer = LoopWriter(db)

    async def one(index: int) -> str:
        for _ in range(index % 3):  # spread the writes over several turns of the loop
            await asyncio.sleep(0)
        return await writer.write(add_account(f"n{index}"))

    async def main() -> list[str]:
        return await asyncio.gather(*(one(index) for index in range(60)))

    assert sorted(asyncio.run(main())) == sorted(f"n{index}" for index in range(60))
    writer.close()
    with db.read() as connection:
        assert connection.execute(select(func.count()).select_from(accounts)).scalar_one() == 60


def test_writing_at_once_needs_nothing_from_a_pool_lent_out_to_threads(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("writing at once is for SQLite")
    with db.write_at_once() as connection:  # takes its connection from the pool, once
        assert connection is not None
    lent = []
    try:
        while db.engine.pool.checkedout() < db.engine.pool.size() + 20:  # type: ignore[attr-defined]
            lent.append(db.engine.connect())
        # Every pooled connection is lent out, and none comes back: waiting for one never ends.
        assert answers_within_deadline(
            db, insert(accounts).values(id="busy", name="busy", balance=0, created_at=0)
        )
    finally:
        for connection in lent:
            connection.close()
    assert names(db) == {"busy"}


def test_a_long_turn_commits_in_batches_of_the_largest_size(db: Database) -> None:
    writer = LoopWriter(db, max_batch=4)
    seen_by_others: dict[str, set[str]] = {}

    def add_and_look(name: str) -> Callable[[Connection], str]:
        def work(connection: Connection) -> str:
            # What another connection sees now: the batches before this write's, committed.
            seen_by_others[name] = names(db)
            connection.execute(insert(accounts).values(id=name, name=name, balance=0, created_at=0))
            return name

        return work

    async def main() -> list[str]:
        return await asyncio.gather(*(writer.write(add_and_look(f"b{index}")) for index in range(10)))

    assert sorted(asyncio.run(main())) == sorted(f"b{index}" for index in range(10))
    writer.close()
    assert len(names(db)) == 10
    if db.is_sqlite:  # one turn of the loop: 4 + 4 + 2, each batch committed before the next
        assert seen_by_others["b3"] == set()
        assert seen_by_others["b4"] == {"b0", "b1", "b2", "b3"}
        assert seen_by_others["b8"] == {f"b{index}" for index in range(8)}
    else:  # on PostgreSQL each write commits alone
        assert all(name not in seen for name, seen in seen_by_others.items())
