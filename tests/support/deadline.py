"""Work that must end soon: run under a deadline rather than timed.

A check that something is fast enough does not measure it: it gives the work a deadline far
beyond what it takes (milliseconds), and far below what a blow-up (backtracking, decoding a
bomb) would take, and fails if the work is still running then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def finishes_within(timeout_s: float, work: Callable[[], T], what: str = "the work") -> T:
    """Run `work` in a thread and answer its result (or raise its error); fail if it is still running."""
    results: list[T] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            results.append(work())
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    # A daemon: work that never ends cannot hold the test run open after the failure.
    threading.Thread(target=run, name="deadline-work", daemon=True).start()
    if not done.wait(timeout_s):
        raise AssertionError(f"{what} was still running after {timeout_s:g} s")
    if errors:
        raise errors[0]
    return results[0]
