"""Time as a parameter: everything that needs "now" takes a clock, so tests never sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Answers the current time in Unix milliseconds."""


def system_clock() -> int:
    return time.time_ns() // 1_000_000


Sleeper = Callable[[float], None]
"""Waits the given number of seconds: `time.sleep`, or in tests one that moves a fake clock."""
