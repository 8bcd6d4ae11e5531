"""A task as the wire shows it: the ``data`` of recordInfo, which callbacks also carry."""

from __future__ import annotations

import json
from typing import Any

from kinema.domain.task import Task, TaskState
from kinema.storage.signing import LinkSigner


def task_record(
    task: Task, signer: LinkSigner, public_url: str, links_expire_at: int, *, held: bool = False
) -> dict[str, Any]:
    """recordInfo's ``data`` for `task`, with result links signed until `links_expire_at`.

    A queued task `held` back by its account's running cap shows as ``waiting``, as the
    contract describes: it is not next in line for a worker. ``resultJson`` holds what the
    published service's does, the video alone; the stills of its first and last frames are
    Kinema's own fields beside the published ones (null until the task succeeds).
    """
    state = TaskState.WAITING if held and task.state is TaskState.QUEUING else task.state
    return {
        "taskId": task.id,
        "model": task.model,
        "state": state.value,
        "param": task.param,
        "resultJson": _result_json(task, signer, public_url, links_expire_at),
        "failCode": task.fail_code,
        "failMsg": task.fail_msg,
        "costTime": task.cost_time_ms,
        "creditsConsumed": task.credits_consumed,
        "progress": task.progress,
        "createTime": task.created_at,
        "updateTime": task.updated_at,
        "completeTime": task.completed_at,
        "firstFrameUrl": _link(task, "first_frame", signer, public_url, links_expire_at),
        "lastFrameUrl": _link(task, "last_frame", signer, public_url, links_expire_at),
    }


def _result_json(task: Task, signer: LinkSigner, public_url: str, expires_at: int) -> str:
    video = _link(task, "video", signer, public_url, expires_at)
    return "" if video is None else json.dumps({"resultUrls": [video]}, separators=(",", ":"))


def _link(task: Task, role: str, signer: LinkSigner, public_url: str, expires_at: int) -> str | None:
    """The signed link to the file of `role` a successful task made, if it made one."""
    files = task.result
    if task.state is not TaskState.SUCCESS or not files or role not in files:
        return None
    return signer.signed_url(public_url, files[role], expires_at)
