"""A generation task as the service keeps it: its states and the record clients read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

_TASK_ID: Final = re.compile(r"[0-9a-f]{32}")


def is_task_id(value: str) -> bool:
    """Whether `value` can name a task at all: task ids are 32 lowercase hex digits."""
    return _TASK_ID.fullmatch(value) is not None


class TaskState(StrEnum):
    """Where a task is on its way; the values are the wire's ``state`` strings."""

    WAITING = "waiting"  #: Accepted; its input is being fetched and checked.
    QUEUING = "queuing"  #: Ready, waiting for a worker (or for the account's running cap).
    GENERATING = "generating"  #: A worker holds it and the engine is making the video.
    SUCCESS = "success"  #: Finished; the result links are in ``resultJson``.
    FAIL = "fail"  #: Finished without a video; ``failCode`` and ``failMsg`` say why.

    @property
    def is_terminal(self) -> bool:
        return self in (TaskState.SUCCESS, TaskState.FAIL)


class FailCode(StrEnum):
    """Why a task failed, as the string ``failCode`` of the wire."""

    BAD_INPUT = "422"  #: The input (usually the image) breaks a rule.
    INTERNAL = "500"  #: Something went wrong on our side; the credits were refunded.
    GENERATION_FAILED = "501"  #: The engine could not make the video.
    TIMED_OUT = "504"  #: The task ran past its deadline.
    CANCELED = "499"  #: The owner canceled it.


@dataclass(frozen=True, slots=True)
class Task:
    """One task row, with times in Unix milliseconds."""

    id: str
    account_id: str
    model: str
    state: TaskState
    param: str  #: The original request body, compact JSON.
    input: dict[str, object]  #: The validated input, defaults filled in.
    callback_url: str | None
    price: int
    progress: int
    result: dict[str, str] | None  #: Blob keys of the result files, by role.
    fail_code: str
    fail_msg: str
    attempt: int
    lapses: int
    cancel_requested: bool
    created_at: int
    updated_at: int
    started_at: int | None
    completed_at: int | None
    deadline_at: int
    input_key: str | None  #: Blob key of the fetched, checked input image.
    engine_state: dict[str, str] | None = None  #: Saved by a remote engine to resume its job.
    lease_owner: str | None = None  #: The worker holding the task, while one does.
    lease_expires_at: int | None = None  #: When that worker's lease runs out unless renewed.

    @property
    def credits_consumed(self) -> int:
        return self.price if self.state is TaskState.SUCCESS else 0

    @property
    def cost_time_ms(self) -> int:
        if self.started_at is None or self.completed_at is None:
            return 0
        return max(0, self.completed_at - self.started_at)
