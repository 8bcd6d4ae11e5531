"""Credits: an append-only ledger, with the balance kept beside it in the same transactions.

Every movement appends a ledger row and changes ``accounts.balance`` in one transaction. A
reservation is a conditional update (``balance >= price``), so concurrent requests can never
take the balance below zero: whichever comes second sees the first one's effect or waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy import Connection, bindparam, func, insert, select, update

from kinema.domain.errors import InsufficientCredits, InvalidInput, NotFound
from kinema.store.database import run
from kinema.store.schema import accounts, credit_ledger


class Movement(StrEnum):
    """Why credits moved."""

    GRANT = "grant"  #: An operator added (or, negative, removed) credits.
    RESERVE = "reserve"  #: A task's price, taken when the task was accepted.
    REFUND = "refund"  #: A failed or canceled task's price, given back.


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    account_id: str
    task_id: str | None
    delta: int
    reason: Movement
    note: str
    created_at: int


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
_APPEND: Final = insert(credit_ledger).values(
    account_id=bindparam("account_id"),
    task_id=bindparam("task_id"),
    delta=bindparam("delta"),
    reason=bindparam("reason"),
    note=bindparam("note"),
    created_at=bindparam("created_at"),
)


def balance(connection: Connection, account_id: str) -> int:
    value = connection.execute(
        select(accounts.c.balance).where(accounts.c.id == account_id)
    ).scalar_one_or_none()
    if value is None:
        raise NotFound(f"no account {account_id!r}")
    return int(value)


def grant(connection: Connection, account_id: str, amount: int, now: int, note: str = "") -> int:
    """Add `amount` credits (negative to remove, never below zero); answers the new balance."""
    if amount == 0:
        return balance(connection, account_id)
    result = connection.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.balance + amount >= 0)
        .values(balance=accounts.c.balance + amount)
    )
    if result.rowcount != 1:
        current = balance(connection, account_id)  # raises NotFound for an unknown account
        raise InvalidInput(f"cannot remove {-amount} credits: the balance is {current}")
    _append(connection, account_id, None, amount, Movement.GRANT, now, note)
    return balance(connection, account_id)


def reserve(connection: Connection, account_id: str, task_id: str, price: int, now: int) -> None:
    """Take a task's price from the balance, or raise `InsufficientCredits`."""
    if price == 0:
        return
    if run(connection, _RESERVE, {"account_id": account_id, "price": price}) != 1:
        raise InsufficientCredits()
    _append(connection, account_id, task_id, -price, Movement.RESERVE, now)


def refund(connection: Connection, account_id: str, task_id: str, price: int, now: int) -> None:
    """Give a task's price back. Callers make sure it happens once (a fenced state change)."""
    if price == 0:
        return
    run(connection, _REFUND, {"account_id": account_id, "price": price})
    _append(connection, account_id, task_id, price, Movement.REFUND, now)


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


def _append(
    connection: Connection,
    account_id: str,
    task_id: str | None,
    delta: int,
    reason: Movement,
    now: int,
    note: str = "",
) -> None:
    run(
        connection,
        _APPEND,
        {
            "account_id": account_id,
            "task_id": task_id,
            "delta": delta,
            "reason": reason.value,
            "note": note,
            "created_at": now,
        },
    )
