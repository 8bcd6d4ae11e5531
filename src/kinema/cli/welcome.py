"""The first-run welcome of ``make run``: a local key, and an example that works as pasted."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from kinema.accounts import keys
from kinema.domain.clock import system_clock
from kinema.domain.errors import Unauthorized
from kinema.settings import Settings
from kinema.store.database import Database

KEY_FILE = "local-key.txt"
SEED_MODEL = "hailuo/2-3-image-to-video-standard"


def local_key(settings: Settings, db: Database) -> str:
    """The key saved in the data folder, made (with starter credits) on first run."""
    path = settings.data_dir / KEY_FILE
    if path.exists():
        saved = path.read_text().strip()
        try:
            keys.authenticate(db, saved)
            return saved
        except Unauthorized:
            pass  # revoked, or a different database: make a new one
    with db.write() as connection:
        new = keys.open_account(connection, "local", settings.starter_credits, system_clock())
    _write_private(path, new.secret + "\n")
    return new.secret


def print_welcome(settings: Settings, db: Database, served: str) -> None:
    """The key and a ready example, for a server reached at `served` on this machine."""
    key = local_key(settings, db)
    base = served
    body = {
        "model": SEED_MODEL,
        "input": {
            "prompt": "[Push in, Pan right] A mountain lake at sunset",
            "image_url": f"{settings.public_url}/samples/sample.jpg",
            "duration": "6",
            "resolution": "768P",
        },
    }
    auth = shlex.quote(f"Authorization: Bearer {key}")
    print(
        f"""
Kinema is starting on {base}  (playground and API; API docs at {base}/docs)

Open {base}/ in a browser to make a video there, or use the API as below.

Your API key (kept in {settings.data_dir / KEY_FILE}; the playground asks for it once):
{key}

Create a task:
curl -s {base}/api/v1/jobs/createTask -H {auth} -H 'Content-Type: application/json' \\
  -d {shlex.quote(json.dumps(body))}

Then poll it with the taskId it answers:
curl -s '{base}/api/v1/jobs/recordInfo?taskId=TASK_ID' -H {auth}
""",
        flush=True,
    )


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
