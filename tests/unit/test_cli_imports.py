"""The command line loads the server only for the commands that run it."""

from __future__ import annotations

import subprocess
import sys

#: What the client commands (generate, status, tasks, credits) have no use for.
SERVER_MODULES = ("sqlalchemy", "alembic", "uvicorn", "boto3", "cv2", "av", "kinema.runtime", "kinema.store")


def test_the_client_commands_start_without_the_server() -> None:
    probe = "import sys, kinema.cli; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert sorted(name for name in SERVER_MODULES if name in loaded) == []
