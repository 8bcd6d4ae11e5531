"""How the minimax engine is set up; built from ``KINEMA_MINIMAX_*`` settings."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from kinema.domain.clock import Clock, Sleeper, system_clock
from kinema.engines.base import RateGate

GLOBAL_BASE_URL = "https://api.minimax.io"
CHINA_BASE_URL = "https://api.minimaxi.com"


@dataclass(frozen=True, slots=True)
class MinimaxConfig:
    api_key: str
    base_url: str
    poll_s: float
    #: Catalog model -> upstream model ("MiniMax-Hailuo-2.3", "MiniMax-Hailuo-02").
    models: Mapping[str, str]
    #: Shared by every worker: submissions and polls both take a turn.
    gate: RateGate
    #: First wait after a network error, an HTTP 5xx or a transient upstream error; doubles
    #: with each failure in a row, up to `retry_max_s`.
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    #: Wait after MiniMax says "rate limited" (1002), before taking another turn on the gate.
    rate_limited_s: float = 5.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    #: The time progress is reckoned in; the service's own clock.
    clock: Clock = system_clock
    #: Every wait (polls, backoff, rate limits) goes through it, in steps short enough to see a cancel.
    sleep: Sleeper = time.sleep

    def __post_init__(self) -> None:
        if self.poll_s <= 0 or self.retry_initial_s <= 0 or self.retry_max_s < self.retry_initial_s:
            raise ValueError("poll and retry intervals must be positive, the retry cap not below the first")
        if self.rate_limited_s <= 0 or self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("waits and timeouts must be positive")
