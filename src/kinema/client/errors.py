"""What the SDK raises: one exception per answer code, and the failures around the answers.

Every answer that is not ``code`` 200 becomes a :class:`KinemaAPIError` subclass chosen by its
code, carrying ``code`` and ``message`` exactly as the server sent them. Failures that never got
an answer (an unreachable server, a wait that ran out of time) have their own classes, all under
:class:`KinemaClientError`, so one ``except KinemaClientError`` covers everything the SDK raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from kinema.client.models import Task

#: The message of an unknown (or another account's) task id; the contract answers it with 422.
RECORD_NOT_FOUND: Final = "recordInfo is null"


class KinemaClientError(Exception):
    """Anything the SDK raises."""


class MissingAPIKeyError(KinemaClientError, ValueError):
    """No key was given and ``KINEMA_API_KEY`` is not set."""


class KinemaConnectionError(KinemaClientError, ConnectionError):
    """The server could not be reached, or stopped answering mid-request."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


class WaitTimeoutError(KinemaClientError, TimeoutError):
    """``wait`` ran out of time before the task ended; ``task`` is the last state seen."""

    def __init__(self, task: Task, timeout_s: float) -> None:
        super().__init__(
            f"task {task.task_id} is still {task.state} ({task.progress}%) after {timeout_s:g} s"
        )
        self.task = task
        self.timeout_s = timeout_s


class DownloadError(KinemaClientError):
    """A file link did not give the file (expired, tampered with, or gone)."""

    def __init__(self, url: str, status: int, reason: str) -> None:
        super().__init__(f"cannot download {url.split('?', 1)[0]}: {reason} (HTTP {status})")
        self.url = url
        self.status = status
        self.reason = reason


class KinemaAPIError(KinemaClientError):
    """The server answered with a ``code`` other than 200.

    ``code`` and ``message`` are the envelope's ``code`` and ``msg``; ``http_status`` is the HTTP
    status the answer came with (200 for most logical outcomes, in the contract's compat mode).
    """

    def __init__(self, code: int, message: str, *, http_status: int = 200, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.data = data


class ValidationError(KinemaAPIError):
    """422 (or 400): a field breaks a rule; the message names the field and the rule."""


class AuthenticationError(KinemaAPIError):
    """401: the key is missing, malformed, unknown or revoked."""


class InsufficientCreditsError(KinemaAPIError):
    """402: the balance does not cover the task's price."""


class NotFoundError(KinemaAPIError):
    """404 (no such route), or 422 ``recordInfo is null`` (no such task for this key)."""


class RateLimitError(KinemaAPIError):
    """429: over a rate limit, still so after the SDK's retries; ``retry_after`` is in seconds."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int = 429,
        data: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, http_status=http_status, data=data)
        self.retry_after = retry_after


class MaintenanceError(KinemaAPIError):
    """455: the service is in maintenance."""


class ServerError(KinemaAPIError):
    """500, or any other 5xx without a class of its own: the server failed."""


class GenerationFailedError(KinemaAPIError):
    """501: generation failed. ``wait`` raises it for a task that ended in ``fail``, with the
    task's ``failCode`` as ``fail_code`` and its ``failMsg`` as ``message``."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int = 200,
        data: Any = None,
        task: Task | None = None,
    ) -> None:
        super().__init__(code, message, http_status=http_status, data=data)
        self.task = task

    @property
    def fail_code(self) -> str:
        """The task's ``failCode`` (``"422"``, ``"500"``, ``"501"``, ``"504"``, ``"499"``)."""
        return self.task.fail_code if self.task is not None else str(self.code)

    @classmethod
    def of_task(cls, task: Task) -> GenerationFailedError:
        error_class = TaskCanceledError if task.fail_code == "499" else cls
        return error_class(501, task.fail_msg or "generation failed", task=task)

    def __str__(self) -> str:
        if self.task is None:
            return super().__str__()
        return f"task {self.task.task_id} failed ({self.fail_code}): {self.message}"


class TaskCanceledError(GenerationFailedError):
    """The task was canceled (``failCode`` ``"499"``, a Kinema extension)."""


class FeatureDisabledError(KinemaAPIError):
    """505: the model needs something the server's engine cannot do."""


class UnexpectedResponseError(KinemaAPIError):
    """An answer that is not the contract's envelope (a proxy's error page, say)."""


_BY_CODE: Final[dict[int, type[KinemaAPIError]]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    404: NotFoundError,
    422: ValidationError,
    429: RateLimitError,
    455: MaintenanceError,
    500: ServerError,
    501: GenerationFailedError,
    505: FeatureDisabledError,
}


def error_for(
    code: int, message: str, *, http_status: int = 200, data: Any = None, retry_after: float | None = None
) -> KinemaAPIError:
    """The typed exception for an answer's ``code`` and ``msg``."""
    if code == 422 and message == RECORD_NOT_FOUND:
        return NotFoundError(code, message, http_status=http_status, data=data)
    error_class = _BY_CODE.get(code)
    if error_class is None:
        error_class = ServerError if 500 <= code < 600 else KinemaAPIError
    if error_class is RateLimitError:
        return RateLimitError(code, message, http_status=http_status, data=data, retry_after=retry_after)
    return error_class(code, message, http_status=http_status, data=data)
