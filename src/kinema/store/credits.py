"""Statements on accounts and their credit ledger: the money aggregate.

Every movement appends a ledger row and changes ``accounts.balance`` in the same transaction. A
reservation is a conditional update (``balance >= price``) with a check constraint behind it,
so concurrent requests can never take the balance below zero.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, bindparam, func, insert, select, update

from kinema.domain.accounts import LedgerEntry, Movement
from kinema.store.database import Database, run
from kinema.store.schema import accounts, credit_ledger

# Built once: every createTask runs them, and a prebuilt statement is not rebuilt and re-keyed.
_RESERVE: Final = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"), accounts.c.balance >= bindparam("price"))
    .values(balance=accounts.c.balance - bindparam("price"))
)
_REFUND: Final = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(balance=accounts.c.balance + bindparam("price"))
)
#: Read before costly checks at createTask, on the fast path (`Database.first`).
BALANCE: Final = select(accounts.c.balance).where(accounts.c.id == bindparam("account_id"))
_APPEND: Final = insert(credit_ledger).values(
    account_id=bindparam("account_id"),
    task_id=bindparam("task_id"),
    delta=bindparam("delta"),
    reason=bindparam("reason"),
    note=bindparam("note"),
    created_at=bindparam("created_at"),
)


def insert_account(connection: Connection, account_id: str, name: str, now: int) -> None:
    connection.execute(insert(accounts).values(id=account_id, name=name, balance=0, created_at=now))


def account_name(connection: Connection, account_id: str) -> str | None:
    return connection.execute(select(accounts.c.name).where(accounts.c.id == account_id)).scalar_one_or_none()


def balance(connection: Connection, account_id: str) -> int | None:
    """The account's balance, or None when there is no such account."""
    value = connection.execute(
        select(accounts.c.balance).where(accounts.c.id == account_id)
    ).scalar_one_or_none()
    return None if value is None else int(value)


def balance_now(db: Database, account_id: str) -> int | None:
    """The account's balance as last committed, read at the least cost (`Database.first`)."""
    row = db.first(BALANCE, {"account_id": account_id})
    return None if row is None else int(row["balance"])


def add(connection: Connection, account_id: str, amount: int, most: int) -> bool:
    """Add `amount` (negative to remove) unless the balance would go below zero or above `most`.

    The bound is compared with what the balance lacks or has (``balance <= most - amount``), so
    the comparison itself never computes a sum past either limit.
    """
    result = connection.execute(
        update(accounts)
        .where(
            accounts.c.id == account_id,
            accounts.c.balance >= -amount,
            accounts.c.balance <= most - amount,
        )
        .values(balance=accounts.c.balance + amount)
    )
    return result.rowcount == 1


def take(connection: Connection, account_id: str, price: int) -> bool:
    """Take `price` from the balance if it covers it."""
    return run(connection, _RESERVE, {"account_id": account_id, "price": price}) == 1


def give_back(connection: Connection, account_id: str, price: int) -> None:
    run(connection, _REFUND, {"account_id": account_id, "price": price})


def append(connection: Connection, entry: LedgerEntry) -> None:
    run(
        connection,
        _APPEND,
        {
            "account_id": entry.account_id,
            "task_id": entry.task_id,
            "delta": entry.delta,
            "reason": entry.reason.value,
            "note": entry.note,
            "created_at": entry.created_at,
        },
    )


def ledger(connection: Connection, account_id: str) -> list[LedgerEntry]:
    rows = connection.execute(
        select(credit_ledger).where(credit_ledger.c.account_id == account_id).order_by(credit_ledger.c.id)
    )
    return [
        LedgerEntry(row.account_id, row.task_id, row.delta, Movement(row.reason), row.note, row.created_at)
        for row in rows
    ]


def ledger_sum(connection: Connection, account_id: str) -> int:
    total = connection.execute(
        select(func.coalesce(func.sum(credit_ledger.c.delta), 0)).where(
            credit_ledger.c.account_id == account_id
        )
    ).scalar_one()
    return int(total)
