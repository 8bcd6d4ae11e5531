"""The Python SDK for Kinema and any server that speaks the market-jobs API.

```python
from kinema.client import Client

with Client() as kinema:  # KINEMA_BASE_URL and KINEMA_API_KEY
    task_id = kinema.create_task(prompt="[Push in] a lake", image_url="https://.../lake.jpg")
    kinema.download(kinema.wait(task_id), "lake.mp4")
```

It imports nothing of the server: only the standard library and httpx.
"""

from __future__ import annotations

from kinema.client.async_client import AsyncClient
from kinema.client.errors import (
    AuthenticationError,
    DownloadError,
    FeatureDisabledError,
    GenerationFailedError,
    InsufficientCreditsError,
    KinemaAPIError,
    KinemaClientError,
    KinemaConnectionError,
    MaintenanceError,
    MissingAPIKeyError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TaskCanceledError,
    UnexpectedResponseError,
    ValidationError,
    WaitTimeoutError,
)
from kinema.client.models import DEFAULT_MODEL, StateChange, Task, TaskPage, TaskState, UploadedFile
from kinema.client.sync_client import Client
from kinema.client.wire import DEFAULT_BASE_URL, PollSchedule, published_backoff

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "DownloadError",
    "FeatureDisabledError",
    "GenerationFailedError",
    "InsufficientCreditsError",
    "KinemaAPIError",
    "KinemaClientError",
    "KinemaConnectionError",
    "MaintenanceError",
    "MissingAPIKeyError",
    "NotFoundError",
    "PollSchedule",
    "RateLimitError",
    "ServerError",
    "StateChange",
    "Task",
    "TaskCanceledError",
    "TaskPage",
    "TaskState",
    "UnexpectedResponseError",
    "UploadedFile",
    "ValidationError",
    "WaitTimeoutError",
    "published_backoff",
]
