"""The engine's own process: builds the engine, sets it up once, then makes one job at a time.

A reader thread takes every message from the worker as it comes, so a `Cancel` is seen by the
engine's next cancel check (within a frame or a step) while the main thread works. When the
worker's end of the pipe closes (the worker died), the process exits at once: an engine left
running would hold its GPU with nobody to answer.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import replace
from multiprocessing.connection import Connection

from kinema.domain.errors import GenerationCanceled, KinemaError
from kinema.engines.base import Engine
from kinema.engines.isolated.events import (
    OUT_OF_MEMORY_MESSAGE,
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
    kind_of,
)

log = logging.getLogger("kinema.engines.isolated")


class _Inbox:
    """The worker's messages, read by a thread of their own."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.runs: queue.SimpleQueue[Run | None] = queue.SimpleQueue()  #: None: close.
        self.answers: queue.SimpleQueue[StateKept] = queue.SimpleQueue()
        self.canceled: set[int] = set()
        self.closing = False
        self._sending = threading.Lock()
        threading.Thread(target=self._read, name="kinema-engine-inbox", daemon=True).start()

    def send(self, message: FromEngine) -> None:
        with self._sending:
            self.connection.send(message)

    def stopped(self, job_id: int) -> bool:
        return self.closing or job_id in self.canceled

    def _read(self) -> None:
        while True:
            try:
                message = self.connection.recv()
            except (EOFError, OSError):
                # The worker is gone: nobody waits for what this process would make.
                os._exit(0)
            if isinstance(message, Run):
                self.runs.put(message)
            elif isinstance(message, Cancel):
                self.canceled.add(message.job_id)
            elif isinstance(message, StateKept):
                self.answers.put(message)
            elif isinstance(message, Close):
                self.closing = True
                self.runs.put(None)
                return


def serve(build: Callable[[], Engine], connection: Connection, log_level: int) -> None:
    """The process's whole life (the target the worker spawns)."""
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s %(name)s [engine process {os.getpid()}] %(message)s",
    )
    inbox = _Inbox(connection)
    try:
        engine = build()
        engine.setup()
    except Exception as error:
        inbox.send(_failure(SETUP, error))
        return
    inbox.send(Ready(os.getpid()))
    while (run := inbox.runs.get()) is not None:
        outcome = _make(engine, run, inbox)
        inbox.send(outcome)
        inbox.canceled.discard(run.job_id)


def _make(engine: Engine, run: Run, inbox: _Inbox) -> Done | Failed:
    job_id = run.job_id

    def save_state(state: Mapping[str, str]) -> None:
        inbox.send(StateSaved(job_id, dict(state)))
        if not inbox.answers.get().kept:
            raise GenerationCanceled("the task is no longer this worker's")

    def on_progress(done: float) -> None:
        inbox.send(Progress(job_id, done))

    job = replace(run.job, save_state=save_state)
    try:
        return Done(job_id, engine.generate(job, on_progress, lambda: inbox.stopped(job_id)))
    except Exception as error:
        return _failure(job_id, error)


def _failure(job_id: int, error: Exception) -> Failed:
    if isinstance(error, KinemaError):
        return Failed(job_id, kind_of(error), error.message)
    if _out_of_memory(error):
        return Failed(job_id, FailureKind.OUT_OF_MEMORY, OUT_OF_MEMORY_MESSAGE)
    trace = "".join(traceback.format_exception(error))
    return Failed(job_id, FailureKind.INTERNAL, f"{type(error).__name__}: {error}", trace)


def _out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    # torch's own, checked only where torch is loaded already (an engine that uses it).
    torch = sys.modules.get("torch")
    gpu_out_of_memory = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return isinstance(gpu_out_of_memory, type) and isinstance(error, gpu_out_of_memory)
