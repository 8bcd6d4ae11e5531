"""Staging: the local folder where producers write files before a store takes them in.

A job's folder is named for the process that owns it (``job-<host>.<pid>-...``), so that a
sweep tells a crashed process's leftovers from a running one's at once; anything else in the
folder (a store's temporary files) goes once it is older than the bound the sweep is given.
Every store has one: the local store keeps it inside its root, so that taking a file in is a
rename; the S3 store keeps it on the local disk, and uploads from it.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final


class Staging:
    """The staging folder `root`, created if missing."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root

    @contextmanager
    def job_folder(self) -> Iterator[Path]:
        """A fresh, empty folder, removed with whatever is left in it when the context ends."""
        folder = Path(tempfile.mkdtemp(prefix=f"job-{_HOST}.{os.getpid()}-", dir=self.root))
        try:
            yield folder
        finally:
            # The producer may have removed the folder itself.
            if folder.exists():
                shutil.rmtree(folder)

    def sweep(self, now: float, older_than_s: float) -> int:
        """Delete what crashed writers left; returns how many entries went.

        An entry is stale when the process of this host that made it runs no more, or when
        nothing in it changed for `older_than_s` seconds before `now` (for entries of other
        hosts, or of no known owner): choose a bound well above the longest job.
        """
        cutoff = now - older_than_s
        removed = 0
        with os.scandir(self.root) as entries:
            stale = [entry for entry in entries if _owner_gone(entry.name) or _newest_mtime(entry) < cutoff]
        for entry in stale:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        return removed


#: This host, as staging names spell it (no dashes, which separate the parts of a name).
_HOST: Final = socket.gethostname().replace("-", "_").replace(".", "_")


def _newest_mtime(entry: os.DirEntry[str]) -> float:
    newest = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        for dirpath, dirnames, filenames in os.walk(entry.path):
            for name in (*dirnames, *filenames):
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return newest


def _owner_gone(name: str) -> bool:
    """Whether the staging entry `name` (``job-<host>.<pid>-...``) belongs to a process of this
    host that no longer runs."""
    if not name.startswith("job-"):
        return False
    owner = name[4:].split("-", 1)[0]
    host, _, pid = owner.rpartition(".")
    if host != _HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False
