"""Engines by name, imported only when asked for, so a heavy engine costs nothing unused."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from kinema.domain.errors import EngineUnavailable
from kinema.engines.base import Engine


@dataclass(frozen=True, slots=True)
class EngineEntry:
    """Where an engine lives, and the pip extra that brings its dependencies, if any."""

    target: str  #: "module:Class"
    extra: str | None = None


ENGINES: dict[str, EngineEntry] = {
    "motion": EngineEntry("kinema.engines.motion.engine:MotionEngine"),
    "minimax": EngineEntry("kinema.engines.minimax.engine:MinimaxEngine"),
    "diffusers": EngineEntry("kinema.engines.diffusers.engine:DiffusersEngine", extra="diffusers"),
}


def engine_names() -> list[str]:
    return sorted(ENGINES)


def load_engine(name: str, config: object | None = None) -> Engine:
    """Import and construct the engine called `name` (with its `config`, if it takes one).

    `setup` is left to the caller.
    """
    entry = ENGINES.get(name)
    if entry is None and ":" in name:
        # A plugin outside this package, named by where it lives.
        entry = EngineEntry(name)
    if entry is None:
        raise EngineUnavailable(
            f"unknown engine {name!r}; known engines: {', '.join(engine_names())} (or module:Class)"
        )
    module_name, _, class_name = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        if entry.extra is None:
            raise EngineUnavailable(f"cannot import the {name} engine: {error}") from error
        raise EngineUnavailable(
            f"the {name} engine needs the {entry.extra!r} extra: pip install 'kinema[{entry.extra}]' "
            f"({error.name or error} is missing)"
        ) from error
    factory = getattr(module, class_name, None)
    if factory is None:
        raise EngineUnavailable(f"{module_name} has no engine called {class_name!r}")
    engine: Engine = factory() if config is None else factory(config)
    return engine
