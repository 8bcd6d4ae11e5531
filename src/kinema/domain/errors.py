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


class EngineOutOfMemory(GenerationFailed):
    """The engine ran out of memory (the machine's, or the GPU's) on this job.

    The same job needs the same memory on every attempt, so the task fails at once (501) rather
    than going back to the queue.
    """


class EngineCrashed(KinemaError):
    """The process running the engine died midway (a segfault, a kill, an exit).

    Nothing says the next attempt would crash too, so the task goes back to the queue while it
    has attempts left, then fails with code 500.
    """

    code = 500


class GenerationCanceled(KinemaError):
    """The work was asked to stop before it finished."""

    code = 499


class EngineUnavailable(KinemaError):
    """The engine asked for is unknown or its optional dependencies are not installed."""

    code = 505


class EngineMisconfigured(KinemaError):
    """The engine cannot work at all as configured (a refused upstream key, missing weights).

    Tasks fail with code 500 and the service reports itself degraded until it is fixed.
    """

    code = 500


class Unauthorized(KinemaError):
    """The API key is missing, malformed, unknown or revoked."""

    code = 401

    def __init__(self, message: str = "You do not have access permissions") -> None:
        super().__init__(message)


class InsufficientCredits(KinemaError):
    """The account's balance does not cover the price."""

    code = 402

    def __init__(self, message: str = "Credits insufficient") -> None:
        super().__init__(message)


class NotFound(KinemaError):
    """The resource does not exist, or belongs to another account (the two look the same)."""

    code = 404


class TaskNotFound(KinemaError):
    """No such task for this caller (another account's task looks exactly the same)."""

    code = 422

    def __init__(self, message: str = "no such task") -> None:
        super().__init__(message)


class RateLimited(KinemaError):
    """Too many requests; ``retry_after_s`` says when the next one can succeed."""

    code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(KinemaError):
    """The service cannot do this right now (its database is busy or unreachable); nothing was
    changed, and the same request may succeed after ``retry_after_s``."""

    code = 503

    def __init__(self, message: str, retry_after_s: int = 2) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageFull(Unavailable):
    """The disk (or the database's) is full; nothing was stored."""

    code = 507

    def __init__(
        self, message: str = "the server's storage is full; nothing was stored", retry_after_s: int = 60
    ) -> None:
        super().__init__(message, retry_after_s)


class Maintenance(KinemaError):
    """The service is in maintenance and takes no new work."""

    code = 455

    def __init__(self, message: str = "The service is under maintenance; please try again later") -> None:
        super().__init__(message)


class FeatureDisabled(KinemaError):
    """The model needs a capability that the configured engine does not have."""

    code = 505

    def __init__(self, message: str = "This feature is currently disabled") -> None:
        super().__init__(message)
