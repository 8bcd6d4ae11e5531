"""An engine that runs in a child process, so that its crash is not the worker's.

`IsolatedEngine` is an `Engine` like any other to the worker. `setup` spawns the child (the
``spawn`` start method: a fresh interpreter, no copy of the worker's threads or connections),
which builds the real engine and sets it up once; `generate` hands it the job and relays what
comes back: progress to `on_progress`, saved state to the job's `save_state` (callables do not
cross processes), then the result or the error, the same domain errors an engine raises in the
worker's own process. A cancel becomes `Cancel`, seen by the engine's next cancel check.

When the child fails, the worker lives on:

- it dies (a segfault, ``kill -9``, an exit): `EngineCrashed`, "the engine crashed (killed by
  signal SIGSEGV)", which sends the task back to the queue while it has attempts left;
- it runs out of memory (`MemoryError`, the GPU's out of memory, or the kernel's out-of-memory
  killer): `EngineOutOfMemory`, which fails the task, since the same job would need the same
  memory again; the child is replaced, as a process that ran out of memory may be in any state;
- it does not stop within `stop_grace_s` of a cancel (the task's deadline passed, its owner
  canceled it, the worker stops): it is killed and `generate` raises `GenerationCanceled`, as
  an engine that stopped would have.

A fresh child is spawned at once after one is lost, so the next job finds it setting up. One
child makes one job at a time: further calls wait their turn (still answering cancels).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Final

from kinema.domain.errors import EngineMisconfigured, GenerationCanceled, KinemaError
from kinema.engines.base import (
    CancelCheck,
    Engine,
    EngineInfo,
    GenerationJob,
    GenerationResult,
    ProgressCallback,
    check_job,
)
from kinema.engines.isolated import child as child_process
from kinema.engines.isolated import exits
from kinema.engines.isolated.events import (
    SETUP,
    Cancel,
    Close,
    Done,
    Failed,
    FailureKind,
    FromEngine,
    Progress,
    Ready,
    Run,
    StateKept,
    StateSaved,
    ToEngine,
    crossing,
    error_of,
)
from kinema.engines.registry import load_engine

log = logging.getLogger("kinema.engines.isolated")

#: How often the worker's side looks at the cancel check while it waits for the child.
_POLL_S: Final = 0.05
#: How long an idle child has to exit when closed, before it is killed.
_CLOSE_S: Final = 10.0


class EngineProcessError(Exception):
    """An unexpected error (a bug) in the engine's process; the message holds its traceback.

    Not a `KinemaError`: the worker logs it and fails the task with its generic message.
    """


class _Lost:
    """What `_Child.receive` answers once the child is gone."""


_LOST: Final = _Lost()


class _Child:
    """One child process and the worker's end of its pipe."""

    def __init__(self, build: Callable[[], Engine], name: str) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self.connection: Connection = ours
        self.process: BaseProcess = context.Process(
            target=child_process.serve,
            args=(build, theirs, logging.getLogger("kinema").getEffectiveLevel()),
            name=f"kinema-engine-{name}",
            daemon=True,
        )
        self._oom_files = exits.oom_kill_files()
        self.oom_kills = exits.oom_kills(self._oom_files)  #: As counted when it last began work.
        self.process.start()
        theirs.close()  # only the child holds its end: its death reads as the end of the pipe
        self.ready = False
        self.killed = False  #: By the worker: its end is not a crash.
        self._sending = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def send(self, message: ToEngine) -> None:
        with self._sending, suppress(OSError):  # the child is gone; the next receive says so
            self.connection.send(message)

    def receive(self, timeout_s: float) -> FromEngine | _Lost | None:
        """The child's next message, `_LOST` once it is gone, None if nothing came in time."""
        if self.connection.closed:
            return _LOST
        ready = wait([self.connection, self.process.sentinel], timeout_s)
        if self.connection in ready:
            try:
                message: FromEngine = self.connection.recv()
            except (EOFError, OSError):
                return self._gone()
            return message
        if ready:
            return self._gone()
        return None

    def _gone(self) -> _Lost:
        self.process.join()
        self.connection.close()
        return _LOST

    def begin(self, run: Run) -> None:
        """Send a job, counting the out-of-memory kills so far (another process's, since the
        child started, must not be taken for the child's)."""
        self.oom_kills = exits.oom_kills(self._oom_files)
        self.send(run)

    def death_error(self) -> KinemaError:
        """Why the child died, once it has (`receive` answered `_LOST`)."""
        exitcode = self.process.exitcode
        assert exitcode is not None
        after = exits.oom_kills(self._oom_files)
        error = exits.death_error(exitcode, self.oom_kills, after, starting=not self.ready)
        log.warning("the engine's process %s ended: %s", self.pid, exits.exit_words(exitcode))
        return error

    def kill(self) -> None:
        self.killed = True
        self.process.kill()
        self.process.join()
        self.connection.close()

    def close(self, timeout_s: float) -> None:
        """Ask the child to exit; kill it if it has not within `timeout_s`."""
        self.send(Close())
        self.process.join(timeout_s)
        if self.process.exitcode is None:
            log.warning("the engine's process %s did not exit when closed: killed", self.pid)
        self.kill()


class IsolatedEngine:
    """An engine run in a child process; see the module docs."""

    def __init__(self, build: Callable[[], Engine], *, stop_grace_s: float = 60.0) -> None:
        """`build` makes the engine in the child; it must pickle (a module's function or class,
        or a `functools.partial` of one). It is also called here once, for the engine's `info`
        (constructing an engine loads nothing; `setup` does, and only in the child).
        """
        probe = build()
        try:
            pickle.dumps(build)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            raise EngineMisconfigured(
                f"the {probe.info.name} engine cannot run in a process of its own: "
                f"its configuration cannot be sent to one ({error})"
            ) from error
        self.info: EngineInfo = probe.info
        self.stop_grace_s = stop_grace_s
        self._build = build
        self._child: _Child | None = None
        self._closed = False
        self._jobs = itertools.count(SETUP + 1)
        #: One job at a time in the child; held by `setup`, `generate` and `close`.
        self._turn = threading.Lock()

    @property
    def process_id(self) -> int | None:
        """The pid of the child process, while one is there."""
        child = self._child
        return None if child is None else child.pid

    def setup(self) -> None:
        """Spawn the child and wait for it to set the engine up; its errors are raised here."""
        with self._turn:
            self._ready_child(lambda: False)

    def generate(
        self, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        check_job(self.info, job)
        while not self._turn.acquire(timeout=_POLL_S):
            if should_cancel():
                raise GenerationCanceled("canceled while waiting for the engine")
        try:
            child = self._ready_child(should_cancel)
            return self._relay(child, job, on_progress, should_cancel)
        finally:
            self._turn.release()

    def close(self) -> None:
        """Let the child go: at once when idle, killed when a job still holds it after a while."""
        self._closed = True
        if self._turn.acquire(timeout=_CLOSE_S):
            try:
                child, self._child = self._child, None
                if child is not None:
                    child.close(_CLOSE_S)
            finally:
                self._turn.release()
            return
        child = self._child
        if child is not None:
            log.warning("the engine's process %s is still busy as it closes: killed", child.pid)
            child.kill()  # the job running sees it gone and stops

    # Under the turn.

    def _ready_child(self, should_cancel: CancelCheck) -> _Child:
        """The child, spawned if there is none, once it is set up."""
        if self._closed:
            raise GenerationCanceled("the engine is closing")
        if self._child is None:
            self._child = _Child(self._build, self.info.name)
        child = self._child
        while not child.ready:
            message = child.receive(_POLL_S)
            if isinstance(message, _Lost):
                self._child = None
                raise child.death_error()
            if isinstance(message, Ready):
                child.ready = True
            elif isinstance(message, Failed):
                self._child = None
                child.kill()
                raise self._error(message)
            elif should_cancel():
                # The child goes on setting up, for the next job.
                raise GenerationCanceled("canceled while the engine was starting")
        return child

    def _relay(
        self, child: _Child, job: GenerationJob, on_progress: ProgressCallback, should_cancel: CancelCheck
    ) -> GenerationResult:
        job_id = next(self._jobs)
        child.begin(Run(job_id, crossing(job)))
        asked_to_stop: float | None = None  #: When `Cancel` was sent.
        reason: BaseException | None = None  #: Raised once the child lets go of the job.
        finished = False
        try:
            while True:
                message = child.receive(_POLL_S)
                if isinstance(message, _Lost):
                    finished = True
                    self._replace(child)
                    if child.killed:
                        raise reason or GenerationCanceled("the engine was stopped as it closed")
                    raise child.death_error()
                if isinstance(message, Progress) and message.job_id == job_id:
                    on_progress(message.done)
                elif isinstance(message, StateSaved) and message.job_id == job_id:
                    try:
                        job.save_state(message.state)
                    except BaseException as error:
                        child.send(StateKept(job_id, kept=False))
                        reason = reason or error
                    else:
                        child.send(StateKept(job_id, kept=True))
                elif isinstance(message, Done) and message.job_id == job_id:
                    finished = True
                    if reason is not None:
                        raise reason
                    return message.result
                elif isinstance(message, Failed) and message.job_id == job_id:
                    finished = True
                    if message.kind is FailureKind.OUT_OF_MEMORY:
                        child.kill()
                        self._replace(child)
                    raise reason or self._error(message)
                if asked_to_stop is None:
                    if reason is not None or self._closed or should_cancel():
                        child.send(Cancel(job_id))
                        asked_to_stop = time.monotonic()
                elif time.monotonic() - asked_to_stop > self.stop_grace_s:
                    log.warning(
                        "the engine's process %s did not stop within %g s of a cancel: killed",
                        child.pid,
                        self.stop_grace_s,
                    )
                    finished = True
                    child.kill()
                    self._replace(child)
                    raise reason or GenerationCanceled(
                        f"the engine did not stop within {self.stop_grace_s:g} s and was killed"
                    )
        finally:
            if not finished:
                # Something of ours failed midway (relaying progress, say): the child's state
                # is unknown, so it goes.
                child.kill()
                self._replace(child)

    def _replace(self, lost: _Child) -> None:
        """A fresh child for the next job, setting up while the worker carries on."""
        if self._child is lost:
            self._child = None if self._closed else _Child(self._build, self.info.name)

    def _error(self, failed: Failed) -> Exception:
        if failed.kind is FailureKind.INTERNAL:
            log.error("the %s engine failed in its process:\n%s", self.info.name, failed.trace)
            return EngineProcessError(f"the {self.info.name} engine failed in its process: {failed.message}")
        return error_of(failed)


def isolated(name: str, config: object | None = None, *, stop_grace_s: float = 60.0) -> IsolatedEngine:
    """The registry's engine `name` (with its `config`), run in a child process."""
    return IsolatedEngine(partial(load_engine, name, config), stop_grace_s=stop_grace_s)
