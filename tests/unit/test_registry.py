from __future__ import annotations

import pytest

from kinema.domain.errors import EngineUnavailable
from kinema.domain.video import Capability
from kinema.engines import registry
from kinema.engines.registry import EngineEntry, engine_names, load_engine


def test_motion_is_the_default_engine_and_loads_by_name() -> None:
    engine = load_engine("motion")
    assert engine.info.name == "motion"
    assert Capability.IMAGE_TO_VIDEO in engine.info.capabilities
    assert not engine.info.generates_content
    assert "motion" in engine_names()


def test_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(EngineUnavailable, match=r"unknown engine 'warp'.*motion"):
        load_engine("warp")


def test_missing_extra_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = dict(registry.ENGINES, heavy=EngineEntry("kinema_missing_module:Engine", extra="heavy"))
    monkeypatch.setattr(registry, "ENGINES", entries)
    with pytest.raises(EngineUnavailable, match=r"pip install 'kinema\[heavy\]'"):
        load_engine("heavy")
