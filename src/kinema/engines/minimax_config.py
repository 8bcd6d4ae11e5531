"""How the minimax engine is set up; built from ``KINEMA_MINIMAX_*`` settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
