"""Callbacks as the service keeps them: deliveries of a finished task's answer, and their attempts."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeliveryState(StrEnum):
    PENDING = "pending"  #: Not delivered yet; retried until the retry window closes.
    DELIVERED = "delivered"  #: The receiver answered 2xx.
    FAILED = "failed"  #: The window closed without a 2xx; a redeliver call can start again.


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    started_at: int
    status: int | None  #: The receiver's HTTP status; None when no answer came.
    latency_ms: int
    error: str


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str  #: Also the ``webhook-id`` header: receivers deduplicate on it.
    url: str
    state: str
    attempts: list[Attempt]
    next_attempt_at: int | None
    created_at: int
    delivered_at: int | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A delivery a deliverer holds for one attempt."""

    id: str
    task_id: str
    account_id: str
    url: str
    attempt: int
    created_at: int
