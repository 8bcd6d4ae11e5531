"""`Database.first`, the hot read: the same rows on both dialects, and always the latest commit;
pooled connections checked before use once idle."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, bindparam, create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from kinema.accounts import credits, keys
from kinema.domain.clock import system_clock
from kinema.domain.errors import Unauthorized
from kinema.store.database import Database, normalise_url
from kinema.store.dialects import ping_after_idle
from kinema.store.schema import accounts

BY_ID = select(accounts.c.id, accounts.c.balance.label("credits")).where(accounts.c.id == bindparam("id"))
#: A statement with a constant of its own besides the caller's parameter.
RICH = BY_ID.where(accounts.c.balance >= 5)


def open_account(db: Database, balance: int) -> str:
    with db.write() as connection:
        return keys.open_account(connection, "reader", balance, system_clock()).record.account_id


def test_reads_a_row_by_column_name_or_none(db: Database) -> None:
    account_id = open_account(db, 7)
    row = db.first(BY_ID, {"id": account_id})
    assert row is not None
    assert (row["id"], row["credits"]) == (account_id, 7)
    assert db.first(BY_ID, {"id": "nobody"}) is None


def test_constants_in_the_statement_are_bound_too(db: Database) -> None:
    rich = open_account(db, 9)
    poor = open_account(db, 1)
    assert db.first(RICH, {"id": rich}) is not None
    assert db.first(RICH, {"id": poor}) is None


def test_each_read_sees_the_latest_commit(db: Database) -> None:
    account_id = open_account(db, 3)
    assert db.first(BY_ID, {"id": account_id})["credits"] == 3  # type: ignore[index]
    with db.write() as connection:
        credits.grant(connection, account_id, 4, system_clock())
    assert db.first(BY_ID, {"id": account_id})["credits"] == 7  # type: ignore[index]


def test_a_revoked_key_stops_authenticating_at_once(db: Database) -> None:
    with db.write() as connection:
        new = keys.open_account(connection, "reader", 0, system_clock())
    assert keys.authenticate(db, new.secret).key_id == new.record.id
    with db.write() as connection:
        keys.revoke_key(connection, new.record.id, system_clock())
    with pytest.raises(Unauthorized):
        keys.authenticate(db, new.secret)


def test_reads_from_many_threads_then_dispose(db: Database) -> None:
    account_id = open_account(db, 11)
    seen: list[int] = []
    lock = threading.Lock()

    def read() -> None:
        for _ in range(50):
            row = db.first(BY_ID, {"id": account_id})
            assert row is not None
            with lock:
                seen.append(row["credits"])

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [11] * 200
    db.dispose()
    # After dispose, a read opens what it needs again.
    assert db.first(BY_ID, {"id": account_id})["credits"] == 11  # type: ignore[index]


def _backend(connection: Connection) -> int:
    return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.parametrize("idle_s", [0.1, 10.0], ids=["idle within the window", "idle past it"])
def test_a_pooled_connection_idle_past_the_window_is_checked_before_it_is_used(
    database_url: str, idle_s: float
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's connections are to a file: nothing can cut them off")
    now = [0.0]
    engine = create_engine(normalise_url(database_url), pool_size=1, max_overflow=0)
    ping_after_idle(engine, 1.0, monotonic=lambda: now[0])
    admin = create_engine(normalise_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            first = _backend(connection)
        # The server cuts the pooled connection off while it is idle (as a restart would).
        with admin.connect() as connection:
            cut = text("SELECT pg_terminate_backend(:pid, 5000)")
            assert connection.execute(cut, {"pid": first}).scalar_one()
        now[0] += idle_s
        if idle_s < 1.0:
            # Used at once: the statement meets the cut.
            with pytest.raises(OperationalError), engine.connect() as connection:
                _backend(connection)
        with engine.connect() as connection:  # checked first (or after the failure): a new one
            assert _backend(connection) != first
    finally:
        engine.dispose()
        admin.dispose()
