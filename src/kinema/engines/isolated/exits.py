"""How an engine's process ended, in words a user may read, and what error that makes.

A process killed with SIGKILL may have been killed by the kernel's out-of-memory killer: the
cgroup the service runs in counts those kills (``oom_kill``), so a count that rose while the
process ran tells the two apart. Where no cgroup says (another system, no memory controller),
such a death is reported as a crash.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from kinema.domain.errors import EngineCrashed, EngineOutOfMemory, KinemaError
from kinema.engines.isolated.events import OUT_OF_MEMORY_MESSAGE

#: Where the memory controller counts out-of-memory kills: cgroup v2, then v1, each at the root
#: of the mount (what a container sees as its own) and under the process's own cgroup path.
_CGROUP_ROOTS: Final = (("/sys/fs/cgroup", "memory.events"), ("/sys/fs/cgroup/memory", "memory.oom_control"))
_OOM_KILL = re.compile(r"^oom_kill (\d+)$", re.MULTILINE)


def oom_kill_files(proc_cgroup: Path = Path("/proc/self/cgroup")) -> list[Path]:
    """The files that may count this process's cgroup's out-of-memory kills, nearest first."""
    own = {"v2": "", "v1": ""}
    try:
        for line in proc_cgroup.read_text(encoding="utf-8").splitlines():
            _number, controllers, path = line.split(":", 2)
            if controllers == "":
                own["v2"] = path
            elif "memory" in controllers.split(","):
                own["v1"] = path
    except (OSError, ValueError):
        pass
    files: list[Path] = []
    for (root, name), version in zip(_CGROUP_ROOTS, ("v2", "v1"), strict=True):
        if own[version].strip("/"):
            files.append(Path(root) / own[version].strip("/") / name)
        files.append(Path(root) / name)
    return files


def oom_kills(files: Sequence[Path]) -> int | None:
    """How many processes the out-of-memory killer has killed in the cgroup; None if unknown."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        found = _OOM_KILL.search(text)
        if found is not None:
            return int(found.group(1))
    return None


def exit_words(exitcode: int) -> str:
    """``killed by signal SIGSEGV``, ``exited with status 3``."""
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"killed by signal {name}"
    return f"exited with status {exitcode}"


def death_error(
    exitcode: int, oom_kills_before: int | None, oom_kills_after: int | None, *, starting: bool = False
) -> KinemaError:
    """The error for an engine's process that died on its own, at work or `starting`."""
    rose = oom_kills_before is not None and oom_kills_after is not None and oom_kills_after > oom_kills_before
    if exitcode == -signal.SIGKILL and rose:
        return EngineOutOfMemory(f"{OUT_OF_MEMORY_MESSAGE} (the kernel's out-of-memory killer stopped it)")
    when = " while starting" if starting else ""
    return EngineCrashed(f"the engine crashed{when} ({exit_words(exitcode)})")
