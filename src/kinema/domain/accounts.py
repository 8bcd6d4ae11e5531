"""Accounts as the rest of the service sees them: who calls, and how their credits moved."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: The most credits an account may hold, and so the most one grant may move. Far above any
#: real balance, and far below what a 64-bit column or SQLite's integers could overflow at.
MAX_BALANCE: Final = 10**12


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the account and the key it used."""

    account_id: str
    key_id: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as listings show it: never the key itself, only its first characters."""

    id: str
    account_id: str
    account_name: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None


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
