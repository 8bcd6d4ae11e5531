"""Errors as values: each carries the API code and a message meant for the API's user.

They are raised where the rule lives and turned into the wire envelope in one place.
"""

from __future__ import annotations


class KinemaError(Exception):
    """Base of every error whose message is safe to show to a user."""

    code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(KinemaError):
    """The request or its input (an image, a prompt) breaks a rule."""

    code = 422


class GenerationFailed(KinemaError):
    """The engine could not produce a video."""

    code = 501


class GenerationCanceled(KinemaError):
    """The work was asked to stop before it finished."""

    code = 499


class EngineUnavailable(KinemaError):
    """The engine asked for is unknown or its optional dependencies are not installed."""

    code = 505
