"""The worker: claims tasks from the database and carries each one to its end.

A worker process runs ``intake_threads`` intake threads (fetching and checking inputs, which
waits on the network; one account's intakes take at most ``intakes_per_account`` of them, the
account with the fewest first), ``generation_threads`` generation threads (which keep the
CPU or GPU busy), a reaper that puts back tasks whose worker vanished, and one heartbeat. The
heartbeat renews the leases of every task the process holds in one statement, records their
progress, stops a task's engine within a frame when the task is canceled or its lease was lost,
and keeps the process's presence (what `/readyz` reads) fresh.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from kinema.domain.clock import Clock
from kinema.domain.errors import (
    EngineMisconfigured,
    GenerationCanceled,
    InvalidInput,
    KinemaError,
)
from kinema.domain.task import FailCode, Task
from kinema.engines.base import Engine, GenerationResult
from kinema.engines.routing import EngineRouter
from kinema.files import retention
from kinema.files.retention import RetentionPolicy, SweepReport
from kinema.media.intake import DecodeSlots
from kinema.net.fetcher import SafeFetcher
from kinema.storage.base import BlobStore
from kinema.storage.own import OwnFiles
from kinema.store import workers as presence
from kinema.store.database import Database
from kinema.tasks import generate, intake, lifecycle
from kinema.tasks.lifecycle import Claim, Stage
from kinema.worker.signals import CancelSignals, Wakeup

log = logging.getLogger("kinema.tasks")

#: Images decoded at once by a worker built without the process's `DecodeSlots`.
DEFAULT_DECODES_AT_ONCE: Final = 2
#: Staging folders untouched this long belong to a crashed job, never to a running one.
_STALE_STAGING_S: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    generation_threads: int = 1
    intake_threads: int = 4
    intakes_per_account: int | None = 2  #: In flight at once, across every worker; None: no cap.
    lease_s: float = 30.0
    poll_s: float = 1.0
    #: How often idle workers look anyway while notifications reach them (PostgreSQL): for one
    #: lost while the listener reconnected, or work no move announces (a deadline passing).
    safety_poll_s: float = 10.0
    max_running_per_account: int = 2
    max_attempts: int = 3
    retention: RetentionPolicy | None = None  #: None: this worker leaves retention to others.
    #: The catalog models this worker claims; None: every model.
    models: frozenset[str] | None = None
    #: On `stop`, how long running tasks may take to finish before they are handed back.
    drain_s: float = 0.0
    sweep_s: float = 300.0

    @property
    def heartbeat_s(self) -> float:
        """Often enough that a lease never lapses under a live worker, and cancel is prompt."""
        return min(1.0, self.lease_s / 3)

    @property
    def lease_ms(self) -> int:
        return round(self.lease_s * 1000)


class WorkerMetrics:
    """What a worker measures, registered in the registry `/metrics` serves."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.generation_seconds = Histogram(
            "kinema_generation_seconds",
            "Time the engine took to make one video.",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )
        self.finished = Counter(
            "kinema_tasks_finished",
            "Tasks finished by this process's workers, by outcome.",
            ["outcome"],
            registry=registry,
        )


@dataclass
class _Watch:
    """Shared between a task's work and the heartbeat."""

    claim: Claim
    stop: threading.Event
    progress: int = 0
    lost: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class _Held:
    """The tasks this process holds, each with its watch: what the heartbeat renews."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}

    def add(self, watch: _Watch) -> None:
        with self._lock:
            self._watches[watch.claim.task.id] = watch

    def remove(self, watch: _Watch) -> None:
        with self._lock:
            self._watches.pop(watch.claim.task.id, None)

    def now(self) -> list[_Watch]:
        with self._lock:
            return list(self._watches.values())


class Worker:
    """One worker process's threads; `start` and `stop` them, or drive `run_once` in tests."""

    def __init__(
        self,
        db: Database,
        engines: Mapping[str, Engine],
        router: EngineRouter,
        store: BlobStore,
        fetcher: SafeFetcher,
        options: WorkerOptions,
        *,
        clock: Clock,
        wakeup: Wakeup | None = None,
        cancels: CancelSignals | None = None,
        metrics: WorkerMetrics | None = None,
        own_files: OwnFiles | None = None,
        on_finished: Callable[[], None] | None = None,
        decodes: DecodeSlots | None = None,
    ) -> None:
        self.db = db
        self.engines = dict(engines)
        self.router = router
        self.store = store
        self.fetcher = fetcher
        self.options = options
        self.clock = clock
        self.wakeup = wakeup or Wakeup()
        self.cancels = cancels or CancelSignals()
        self.metrics = metrics or WorkerMetrics(CollectorRegistry())
        self.own_files = own_files
        #: Called after a task ends, so its callback goes out without waiting for a poll.
        self.on_finished = on_finished or (lambda: None)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._intake_ports = intake.IntakePorts(
            db, store, fetcher, own_files, clock, decodes or DecodeSlots(DEFAULT_DECODES_AT_ONCE)
        )
        self._generate_ports = generate.GeneratePorts(db, store, self.engines, router, clock)
        #: Set when the worker stops claiming; running tasks may still finish (see `stop`).
        self._closing = threading.Event()
        #: Set when running tasks must stop at their next frame and go back to the queue.
        self._stopping = threading.Event()
        #: Set once every thread that works on tasks has stopped: the heartbeat goes last.
        self._idle = threading.Event()
        self._held = _Held()
        self._degraded = ""
        self._threads: list[threading.Thread] = []
        self._heart: threading.Thread | None = None
        self._listener = lifecycle.listen_for_work(db, lambda stages: self.wakeup.notify(*stages))

    # Running.

    def start(self) -> None:
        self._announce()
        self._sweep_staging()
        if self._listener is not None:
            self._listener.start()
        loops: list[tuple[str, Callable[[], None]]] = [
            (f"intake-{n}", lambda: self._loop(Stage.INTAKE)) for n in range(self.options.intake_threads)
        ]
        loops.append(("reaper", self._reap_loop))
        if self.options.retention is not None:
            loops.append(("retention", self._sweep_loop))
        loops += [
            (f"generate-{n}", lambda: self._loop(Stage.GENERATE))
            for n in range(self.options.generation_threads)
        ]
        for name, target in loops:
            thread = threading.Thread(target=target, name=f"kinema-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._heart = self._heartbeat(until=self._idle, with_presence=True)
        log.info(
            "worker %s started: engine %s, %d generation threads, %d intake threads",
            self.id,
            ", ".join(self.engines),
            self.options.generation_threads,
            self.options.intake_threads,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming, let running tasks finish for ``drain_s``, then stop the rest at their
        next frame and hand them back to the queue (another worker takes them up)."""
        self._closing.set()
        if self._listener is not None:
            self._listener.stop()
        self.wakeup.notify()
        # Waits run on the machine's own clock; the injected one dates the tasks.
        drained_by = time.monotonic() + self.options.drain_s
        for thread in self._threads:
            thread.join(max(0.0, drained_by - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            log.info(
                "worker %s: handing back what did not finish within %.0f s", self.id, self.options.drain_s
            )
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
        # Tasks still stopping kept their leases until now.
        self._idle.set()
        if self._heart is not None:
            self._heart.join(timeout_s)
            self._heart = None
        for engine in self.engines.values():
            # Engines holding connections (an HTTP client) may let them go.
            close = getattr(engine, "close", None)
            if callable(close):
                close()
        with self.db.write() as connection:
            presence.remove(connection, self.id)
        log.info("worker %s stopped", self.id)

    @property
    def closing(self) -> bool:
        """Whether `stop` was called: the worker claims nothing more."""
        return self._closing.is_set()

    def run_once(self, stage: Stage, *, look_first: bool = True) -> bool:
        """Claim and carry one task of `stage`; False when none was ready. `look_first` as
        `lifecycle.claim_next` has it."""
        claim = lifecycle.claim_next(
            self.db,
            stage,
            self.id,
            self.clock(),
            self.options.lease_ms,
            self.options.max_running_per_account,
            self.options.intakes_per_account,
            self.options.models,
            look_first=look_first,
        )
        if claim is None:
            return False
        log.info(
            "task %s %s attempt=%d worker=%s",
            claim.task.id,
            "fetching input" if stage is Stage.INTAKE else "generating",
            claim.attempt,
            self.id,
        )
        if stage is Stage.INTAKE:
            self._intake(claim)
        else:
            self._generate(claim)
        return True

    def _loop(self, stage: Stage) -> None:
        seen = self.wakeup.generation(stage)
        worked = False  # whether the last turn carried a task: then the next claims at once
        while not self._closing.is_set():
            try:
                worked = self.run_once(stage, look_first=not worked)
                if worked:
                    continue
            except Exception:
                worked = False
                # The database went away or a bug: log it, wait a poll, try again. The task,
                # if one was claimed, comes back through the reaper.
                log.exception("%s loop of worker %s failed", stage.value, self.id)
            seen = self.wakeup.wait(self._poll_s(), seen, stage)

    def _poll_s(self) -> float:
        """How long an idle loop waits to look again, if nothing wakes it first."""
        if self._listener is not None and self._listener.listening:
            return max(self.options.poll_s, self.options.safety_poll_s)
        return self.options.poll_s

    def _reap_loop(self) -> None:
        interval = min(5.0, self.options.lease_s / 2)
        while not self._closing.wait(interval):
            try:
                reaped = lifecycle.reap(self.db, self.clock(), self.options.max_attempts)
            except Exception:
                log.exception("reaper of worker %s failed", self.id)
                continue
            for task_id in reaped.requeued:
                log.info("task %s requeued: its worker stopped answering", task_id)
            for task_id in reaped.failed:
                log.info("task %s fail (reaped)", task_id)
            if reaped.failed:
                self.on_finished()
            if reaped.requeued:
                self.wakeup.notify()

    def _sweep_loop(self) -> None:
        assert self.options.retention is not None
        while not self._closing.wait(self.options.sweep_s):
            self.sweep_once()

    def sweep_once(self) -> SweepReport | None:
        """Delete what expired; several workers may sweep at once without harm."""
        assert self.options.retention is not None
        try:
            report = retention.sweep(self.db, self.store, self.clock(), self.options.retention)
            self.store.sweep_staging(self.clock() / 1000, older_than_s=_STALE_STAGING_S)
        except Exception:
            log.exception("retention sweep of worker %s failed", self.id)
            return None
        if report.uploads or report.task_files or report.tasks or report.orphan_inputs:
            log.info(
                "retention: %d uploads, files of %d tasks, %d task records, %d inputs of no task deleted",
                report.uploads,
                report.task_files,
                report.tasks,
                report.orphan_inputs,
            )
        return report

    def _sweep_staging(self) -> None:
        """What workers of this host that crashed left in staging goes at once."""
        try:
            self.store.sweep_staging(self.clock() / 1000, older_than_s=_STALE_STAGING_S)
        except OSError:
            log.exception("sweeping the staging folder failed")

    def _announce(self) -> None:
        now = self.clock()
        with self.db.write() as connection:
            presence.announce(
                connection,
                self.id,
                socket.gethostname(),
                os.getpid(),
                ",".join(self.engines),
                now,
                models=self.options.models,
            )

    def _heartbeat(self, until: threading.Event, *, with_presence: bool) -> threading.Thread:
        thread = threading.Thread(
            target=self._heartbeat_loop, args=(until, with_presence), name="kinema-heartbeat", daemon=True
        )
        thread.start()
        return thread

    def _heartbeat_loop(self, until: threading.Event, with_presence: bool) -> None:
        presence_every = self.options.lease_s / 3
        presence_due = time.monotonic() + presence_every
        while not until.wait(self.options.heartbeat_s):
            self.beat()
            if with_presence and time.monotonic() >= presence_due:
                presence_due = time.monotonic() + presence_every
                try:
                    with self.db.write() as connection:
                        presence.beat(connection, self.id, self.clock())
                except Exception:
                    log.exception("presence beat of worker %s failed", self.id)

    def beat(self) -> None:
        """Renew the lease of every task this process holds, in one statement, and act on what
        the database says of each: canceled, or no longer this worker's."""
        watches = self._held.now()
        if not watches:
            return
        leases = [
            lifecycle.Lease(
                watch.claim.task.id,
                watch.claim.attempt,
                watch.progress if watch.claim.stage is Stage.GENERATE else None,
            )
            for watch in watches
        ]
        try:
            pulses = lifecycle.heartbeat_all(self.db, leases, self.clock(), self.options.lease_ms)
        except Exception:
            log.exception("heartbeat of worker %s failed", self.id)
            return
        for watch in watches:
            pulse = pulses[watch.claim.task.id]
            if watch.done.is_set():
                continue
            if not pulse.owned:
                watch.lost = True
                watch.stop.set()
            elif pulse.cancel_requested:
                watch.stop.set()

    # One task.

    def _intake(self, claim: Claim) -> None:
        task = claim.task
        with self._watched(claim) as watch:
            try:
                input_key = intake.fetch_input(self._intake_ports, task)
            except InvalidInput as error:
                self._fail(claim, FailCode.BAD_INPUT, error.message)
                return
            except Exception:
                log.exception("task %s: fetching the input failed", task.id)
                self._fail(claim, FailCode.INTERNAL, "internal error while fetching the input")
                return
        if watch.lost:
            return
        if intake.queue(self._intake_ports, claim, input_key):
            log.info("task %s queuing", task.id)
            self.wakeup.notify()
        elif watch.stop.is_set() or self._cancel_pending(task.id):
            self._fail(claim, FailCode.CANCELED, "canceled by the owner")

    def _generate(self, claim: Claim) -> None:
        task = claim.task
        ports = self._generate_ports
        with self.store.staging() as folder, self._watched(claim) as watch:
            started = self.clock()
            try:
                job = generate.job_for(
                    ports, task, folder, lambda state: self._save_engine_state(claim, state)
                )

                def on_progress(done: float) -> None:
                    watch.progress = int(done * 99)

                engine = generate.engine_for(ports, task)
                result = engine.generate(job, on_progress, lambda: self._should_stop(task, watch))
            except GenerationCanceled:
                self._stopped(claim, watch)
                return
            except KinemaError as error:
                if isinstance(error, EngineMisconfigured):
                    self._mark_degraded(error.message)
                if generate.retry(ports, claim, error, self.options.max_attempts):
                    log.info("task %s queuing for another attempt: %s", task.id, error.message)
                    self.wakeup.notify(Stage.GENERATE)
                    return
                self._fail(claim, *generate.failure_of(error))
                return
            except Exception:
                log.exception("task %s: the engine failed", task.id)
                self._fail(claim, FailCode.INTERNAL, "internal error while generating the video")
                return
            self.metrics.generation_seconds.observe((self.clock() - started) / 1000)
            if not watch.lost:
                # Still under the heartbeat: storing a large video takes a while.
                self._finish(claim, result)

    def _mark_degraded(self, reason: str) -> None:
        """Tell `/readyz` (in whichever process serves it) that this worker's engine is broken."""
        if reason != self._degraded:
            self._degraded = reason
            with self.db.write() as connection:
                presence.set_degraded(connection, self.id, reason)

    def _save_engine_state(self, claim: Claim, state: Mapping[str, str]) -> None:
        if not lifecycle.save_engine_state(self.db, claim, state, self.clock()):
            raise GenerationCanceled("the task is no longer this worker's")

    def _finish(self, claim: Claim, result: GenerationResult) -> None:
        if generate.keep_result(self._generate_ports, claim, result):
            log.info("task %s success", claim.task.id)
            if self._degraded:
                self._mark_degraded("")
            self.metrics.finished.labels("success").inc()
            self._finished(claim)

    def _stopped(self, claim: Claim, watch: _Watch) -> None:
        task = claim.task
        if watch.lost:
            log.info("task %s: lease lost; this attempt stops", task.id)
        elif self._past_deadline(task):
            self._fail(claim, FailCode.TIMED_OUT, "the task ran past its deadline")
        elif watch.stop.is_set() or not self._stopping.is_set():
            # The stop event is set by a cancel, in this process or seen by the heartbeat.
            self._fail(claim, FailCode.CANCELED, "canceled by the owner")
        elif lifecycle.release(self.db, claim, self.clock()):
            log.info("task %s queuing: its worker is shutting down", task.id)

    def _fail(self, claim: Claim, code: FailCode, message: str) -> None:
        if lifecycle.finish_failure(self.db, claim, code, message, self.clock()):
            log.info("task %s fail %s: %s", claim.task.id, code.value, message)
            self.metrics.finished.labels(f"fail_{code.value}").inc()
            self._finished(claim)

    def _finished(self, claim: Claim) -> None:
        self.on_finished()
        # A slot of the account (an intake, or a running task) is free again: a held task may go.
        self.wakeup.notify(claim.stage)

    def _should_stop(self, task: Task, watch: _Watch) -> bool:
        return watch.stop.is_set() or self._stopping.is_set() or self._past_deadline(task)

    def _past_deadline(self, task: Task) -> bool:
        return self.clock() >= task.deadline_at

    def _cancel_pending(self, task_id: str) -> bool:
        with self.db.read() as connection:
            task = lifecycle.get_task(connection, task_id)
        return task is not None and task.cancel_requested

    @contextmanager
    def _watched(self, claim: Claim) -> Iterator[_Watch]:
        """Keep the claim's lease renewed by the heartbeat while the body runs."""
        watch = _Watch(claim, stop=self.cancels.register(claim.task.id))
        self._held.add(watch)
        # Driven by `run_once` alone (not started), the task gets a heartbeat of its own.
        alone = threading.Event() if self._heart is None else None
        heart = None if alone is None else self._heartbeat(until=alone, with_presence=False)
        try:
            yield watch
        finally:
            watch.done.set()
            if alone is not None and heart is not None:
                alone.set()
                heart.join()
            self._held.remove(watch)
            self.cancels.unregister(claim.task.id)
