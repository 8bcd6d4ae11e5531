"""Which engine serves which catalog model: one default, and single models mapped elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EngineRouter:
    default: str
    by_model: Mapping[str, str] = field(default_factory=dict)

    def name_for(self, model: str) -> str:
        return self.by_model.get(model, self.default)

    @property
    def names(self) -> list[str]:
        """Every engine that serves some model, the default first."""
        others = sorted(set(self.by_model.values()) - {self.default})
        return [self.default, *others]
