"""Where every file lives in the blob store: the one place that names input, result and upload keys.

```
uploads/<account>/<uploadPath>/<fileName>   a file an account uploaded (expires on its own)
inputs/<account>/<task>/image.<ext>         a task's checked copy of its input image
results/<account>/<task>/<attempt>/...      what the attempt that finished the task made
```

Everything of one account sits under its id, and everything of one task under the task's id,
so retention deletes a task's files by prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from kinema.media.types import EXTENSIONS

#: The result files of an attempt, by role, and their names in its folder.
RESULT_FILES: Final[Mapping[str, str]] = {
    "video": "video.mp4",
    "first_frame": "first.jpg",
    "last_frame": "last.jpg",
}


def upload_prefix(account_id: str) -> str:
    """The folder of an account's uploads (with the trailing slash)."""
    return f"uploads/{account_id}/"


def upload_key(account_id: str, file_path: str) -> str:
    return upload_prefix(account_id) + file_path


def input_key(account_id: str, task_id: str, mime_type: str) -> str:
    """Where a task's checked input image is kept."""
    return f"{INPUTS}{account_id}/{task_id}/image{EXTENSIONS.get(mime_type, '')}"


#: The folder of every task's input copy (with the trailing slash).
INPUTS: Final = "inputs/"


def input_owner(key: str) -> tuple[str, str] | None:
    """(the task id, the task's input folder) for a key under `INPUTS`; None for any other key."""
    parts = key.split("/")
    if len(parts) < 4 or f"{parts[0]}/" != INPUTS:
        return None
    return parts[2], "/".join(parts[:3])


def result_prefix(account_id: str, task_id: str, attempt: int) -> str:
    """The folder of what one attempt at a task made (no trailing slash)."""
    return f"results/{account_id}/{task_id}/{attempt}"


def result_keys(account_id: str, task_id: str, attempt: int) -> dict[str, str]:
    """The keys of an attempt's result files, by role."""
    prefix = result_prefix(account_id, task_id, attempt)
    return {role: f"{prefix}/{name}" for role, name in RESULT_FILES.items()}


def results_of_account(account_id: str) -> str:
    """The folder of every result of an account (with the trailing slash)."""
    return f"results/{account_id}/"


def task_prefixes(account_id: str, task_id: str) -> tuple[str, ...]:
    """The folders holding a task's files, inputs and results, for retention to delete."""
    return f"results/{account_id}/{task_id}", f"{INPUTS}{account_id}/{task_id}"
