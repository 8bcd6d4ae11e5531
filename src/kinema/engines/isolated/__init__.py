"""Engines run in a child process of their own, so that a crash of theirs is not the worker's."""

from kinema.engines.isolated.engine import EngineProcessError, IsolatedEngine, isolated

__all__ = ["EngineProcessError", "IsolatedEngine", "isolated"]
