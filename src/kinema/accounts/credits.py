"""Credits: an append-only ledger, with the balance kept beside it in the same transactions.

The rules of money live here; the statements behind them in `kinema.store.credits`. Every
movement appends a ledger row and changes the balance in the caller's transaction; a
reservation succeeds only if the balance covers it, so concurrent requests can never take the
balance below zero: whichever comes second sees the first one's effect or waits for it.
"""

from __future__ import annotations

from kinema.domain.accounts import MAX_BALANCE, LedgerEntry, Movement
from kinema.domain.errors import InsufficientCredits, InvalidInput, NotFound
from kinema.store import credits as statements
from kinema.store.database import Connection, Database

__all__ = [
    "MAX_BALANCE",
    "LedgerEntry",
    "Movement",
    "balance",
    "check_amount",
    "check_covers",
    "grant",
    "ledger",
    "ledger_sum",
    "refund",
    "reserve",
]


def balance(connection: Connection, account_id: str) -> int:
    value = statements.balance(connection, account_id)
    if value is None:
        raise NotFound(f"no account {account_id!r}")
    return value


def grant(connection: Connection, account_id: str, amount: int, now: int, note: str = "") -> int:
    """Add `amount` credits (negative to remove, never below zero nor above `MAX_BALANCE`);
    answers the new balance."""
    check_amount(amount)
    if amount == 0:
        return balance(connection, account_id)
    if not statements.add(connection, account_id, amount, MAX_BALANCE):
        current = balance(connection, account_id)  # raises NotFound for an unknown account
        if amount > 0:
            raise InvalidInput(
                f"cannot add {amount} credits: the balance is {current}, and may be at most {MAX_BALANCE}"
            )
        raise InvalidInput(f"cannot remove {-amount} credits: the balance is {current}")
    statements.append(connection, LedgerEntry(account_id, None, amount, Movement.GRANT, note, now))
    return balance(connection, account_id)


def check_amount(amount: int) -> int:
    """`amount` if one grant may move that many credits, else `InvalidInput` saying the bound."""
    if not -MAX_BALANCE <= amount <= MAX_BALANCE:
        raise InvalidInput(f"an amount of credits must be between {-MAX_BALANCE} and {MAX_BALANCE}")
    return amount


def check_covers(db: Database, account_id: str, price: int) -> None:
    """`InsufficientCredits` if the balance, as last committed, does not cover `price`.

    A quick refusal before costly work, not a reservation: `reserve` still decides.
    """
    if price > 0 and (statements.balance_now(db, account_id) or 0) < price:
        raise InsufficientCredits()


def reserve(connection: Connection, account_id: str, task_id: str, price: int, now: int) -> None:
    """Take a task's price from the balance, or raise `InsufficientCredits`."""
    if price == 0:
        return
    if not statements.take(connection, account_id, price):
        raise InsufficientCredits()
    statements.append(connection, LedgerEntry(account_id, task_id, -price, Movement.RESERVE, "", now))


def refund(connection: Connection, account_id: str, task_id: str, price: int, now: int) -> None:
    """Give a task's price back. Callers make sure it happens once (a fenced state change)."""
    if price == 0:
        return
    statements.give_back(connection, account_id, price)
    statements.append(connection, LedgerEntry(account_id, task_id, price, Movement.REFUND, "", now))


def ledger(connection: Connection, account_id: str) -> list[LedgerEntry]:
    return statements.ledger(connection, account_id)


def ledger_sum(connection: Connection, account_id: str) -> int:
    return statements.ledger_sum(connection, account_id)
