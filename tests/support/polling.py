"""Waiting for a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout_s: float = 20.0, what: str = "condition") -> T:
    """Call `probe` until it answers something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(delay)  # a poll interval, not a wait for the condition
        delay = min(delay * 2, 0.1)
