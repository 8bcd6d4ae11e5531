"""Typed answers: a task, an uploaded file, a page of tasks. Frozen dataclasses read from the wire.

Each keeps the answer it was read from in ``raw``, so nothing the server sent is lost (fields a
newer server adds, or a third-party server's own).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

#: The seed's model, the one every market-jobs server of this API offers.
DEFAULT_MODEL = "hailuo/2-3-image-to-video-standard"


class TaskState(StrEnum):
    """A task's ``state``; members compare equal to the wire's strings."""

    WAITING = "waiting"  #: Accepted; its input is being fetched and checked, or it waits its turn.
    QUEUING = "queuing"  #: Ready, waiting for a worker.
    GENERATING = "generating"  #: The video is being made.
    SUCCESS = "success"  #: Finished; ``result_urls`` has the video.
    FAIL = "fail"  #: Finished without a video; ``fail_code`` and ``fail_msg`` say why.


FINISHED_STATES = frozenset({TaskState.SUCCESS, TaskState.FAIL})


@dataclass(frozen=True, slots=True)
class Task:
    """A task as recordInfo answers it. Times are Unix milliseconds."""

    task_id: str
    model: str
    state: str  #: A :class:`TaskState` member for the contract's states.
    param: dict[str, Any]  #: The original createTask body (the wire sends it as a JSON string).
    result_urls: tuple[str, ...]
    first_frame_url: str | None
    last_frame_url: str | None
    fail_code: str
    fail_msg: str
    cost_time_ms: int
    credits_consumed: int
    progress: int
    create_time: int | None
    update_time: int | None
    complete_time: int | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Task:
        result = _json_object(data.get("resultJson"))
        urls = result.get("resultUrls") or []
        return cls(
            task_id=str(data.get("taskId") or ""),
            model=str(data.get("model") or ""),
            state=_state(data.get("state")),
            param=_json_object(data.get("param")),
            result_urls=tuple(str(url) for url in urls) if isinstance(urls, list) else (),
            # Kinema's own fields beside the published ones; older servers put them in resultJson.
            first_frame_url=_optional_str(data.get("firstFrameUrl") or result.get("firstFrameUrl")),
            last_frame_url=_optional_str(data.get("lastFrameUrl") or result.get("lastFrameUrl")),
            fail_code=str(data.get("failCode") or ""),
            fail_msg=str(data.get("failMsg") or ""),
            cost_time_ms=_int(data.get("costTime")) or 0,
            credits_consumed=_int(data.get("creditsConsumed")) or 0,
            progress=_int(data.get("progress")) or 0,
            create_time=_int(data.get("createTime")),
            update_time=_int(data.get("updateTime")),
            complete_time=_int(data.get("completeTime")),
            raw=dict(data),
        )

    @property
    def is_finished(self) -> bool:
        """Whether the task has ended, in ``success`` or ``fail``."""
        return self.state in FINISHED_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == TaskState.SUCCESS

    @property
    def video_url(self) -> str | None:
        """The first result link (the MP4), once the task succeeded."""
        return self.result_urls[0] if self.result_urls else None

    @property
    def prompt(self) -> str | None:
        task_input = self.param.get("input")
        value = task_input.get("prompt") if isinstance(task_input, dict) else None
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """An upload's answer: pass ``download_url`` as a task's ``image_url``."""

    file_name: str
    file_path: str
    download_url: str
    file_size: int
    mime_type: str
    uploaded_at: str  #: ISO 8601, UTC.
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> UploadedFile:
        return cls(
            file_name=str(data.get("fileName") or ""),
            file_path=str(data.get("filePath") or ""),
            download_url=str(data.get("downloadUrl") or ""),
            file_size=_int(data.get("fileSize")) or 0,
            mime_type=str(data.get("mimeType") or ""),
            uploaded_at=str(data.get("uploadedAt") or ""),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of ``jobs/list`` (an extension): newest first, with the cursor of the next page."""

    tasks: tuple[Task, ...]
    next_cursor: str | None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TaskPage:
        tasks = data.get("tasks") or []
        cursor = data.get("nextCursor")
        return cls(
            tasks=tuple(Task.from_wire(task) for task in tasks if isinstance(task, Mapping)),
            next_cursor=str(cursor) if cursor else None,
        )


@dataclass(frozen=True, slots=True)
class StateChange:
    """One ``state`` event of the live stream."""

    task_id: str
    state: str
    progress: int


def _state(value: object) -> str:
    text = str(value or "")
    try:
        return TaskState(text)
    except ValueError:
        return text


def _json_object(value: object) -> dict[str, Any]:
    """A JSON string field (``param``, ``resultJson``) as a dict; ``{}`` when empty or unreadable."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str) or not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
