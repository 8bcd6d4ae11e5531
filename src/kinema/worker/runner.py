"""The worker: claims tasks from the database and carries each one to its end.

A worker process runs one intake thread (fetching and checking inputs, which waits on the
network), ``generation_threads`` generation threads (which keep the CPU or GPU busy), a reaper
that puts back tasks whose worker vanished, and a presence beat that `/readyz` reads. Every
claimed task gets a heartbeat thread that renews its lease, records its progress and stops
the engine within a frame when the task is canceled, times out, or its lease was lost.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from kinema.domain.clock import Clock
from kinema.domain.errors import (
    EngineMisconfigured,
    EngineUnavailable,
    GenerationCanceled,
    GenerationFailed,
    InvalidInput,
    KinemaError,
)
from kinema.domain.task import FailCode, Task
from kinema.domain.video import Resolution
from kinema.engines.base import Engine, GenerationJob, GenerationResult
from kinema.engines.routing import EngineRouter
from kinema.files import retention
from kinema.files.retention import RetentionPolicy, SweepReport
from kinema.media.fetch import SafeFetcher
from kinema.media.intake import decode_image
from kinema.storage import layout
from kinema.storage.base import BlobStore
from kinema.storage.own import OwnFiles
from kinema.store import workers as presence
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import Claim, Stage
from kinema.worker.signals import CancelSignals, Wakeup

log = logging.getLogger("kinema.tasks")

#: Staging folders untouched this long belong to a crashed job, never to a running one.
_STALE_STAGING_S: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    generation_threads: int = 1
    lease_s: float = 30.0
    poll_s: float = 1.0
    max_running_per_account: int = 2
    max_attempts: int = 3
    retention: RetentionPolicy | None = None  #: None: this worker leaves retention to others.
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
    """Shared between a task's work and its heartbeat thread."""

    stop: threading.Event
    progress: int = 0
    lost: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _engine_options(task: Task) -> dict[str, str]:
    """Inputs beyond the common ones that an engine may use (MiniMax's prompt optimiser)."""
    options: dict[str, str] = {}
    optimizer = task.input.get("prompt_optimizer")
    if isinstance(optimizer, bool):
        options["prompt_optimizer"] = "true" if optimizer else "false"
    return options


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
        self._stopping = threading.Event()
        self._degraded = ""
        self._threads: list[threading.Thread] = []

    # Running.

    def start(self) -> None:
        self._announce()
        loops: list[tuple[str, Callable[[], None]]] = [
            ("intake", lambda: self._loop(Stage.INTAKE)),
            ("reaper", self._reap_loop),
            ("presence", self._presence_loop),
        ]
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
        log.info(
            "worker %s started: engine %s, %d generation threads",
            self.id,
            ", ".join(self.engines),
            self.options.generation_threads,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop claiming; running tasks stop at their next frame and go back to the queue."""
        self._stopping.set()
        self.wakeup.notify()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
        for engine in self.engines.values():
            # Engines holding connections (an HTTP client) may let them go.
            close = getattr(engine, "close", None)
            if callable(close):
                close()
        with self.db.write() as connection:
            presence.remove(connection, self.id)
        log.info("worker %s stopped", self.id)

    def run_once(self, stage: Stage) -> bool:
        """Claim and carry one task of `stage`; False when none was ready."""
        claim = lifecycle.claim_next(
            self.db,
            stage,
            self.id,
            self.clock(),
            self.options.lease_ms,
            self.options.max_running_per_account,
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
        seen = self.wakeup.generation
        while not self._stopping.is_set():
            try:
                if self.run_once(stage):
                    continue
            except Exception:
                # The database went away or a bug: log it, wait a poll, try again. The task,
                # if one was claimed, comes back through the reaper.
                log.exception("%s loop of worker %s failed", stage.value, self.id)
            seen = self.wakeup.wait(self.options.poll_s, seen)

    def _reap_loop(self) -> None:
        interval = min(5.0, self.options.lease_s / 2)
        while not self._stopping.wait(interval):
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
        while not self._stopping.wait(self.options.sweep_s):
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
        if report.uploads or report.task_files or report.tasks:
            log.info(
                "retention: %d uploads, files of %d tasks, %d task records deleted",
                report.uploads,
                report.task_files,
                report.tasks,
            )
        return report

    def _announce(self) -> None:
        now = self.clock()
        with self.db.write() as connection:
            presence.announce(
                connection, self.id, socket.gethostname(), os.getpid(), ",".join(self.engines), now
            )

    def _presence_loop(self) -> None:
        while not self._stopping.wait(self.options.lease_s / 3):
            try:
                with self.db.write() as connection:
                    presence.beat(connection, self.id, self.clock())
            except Exception:
                log.exception("presence beat of worker %s failed", self.id)

    # One task.

    def _intake(self, claim: Claim) -> None:
        task = claim.task
        with self._watched(claim) as watch:
            try:
                input_key = self._fetch_input(task)
            except InvalidInput as error:
                self._fail(claim, FailCode.BAD_INPUT, error.message)
                return
            except Exception:
                log.exception("task %s: fetching the input failed", task.id)
                self._fail(claim, FailCode.INTERNAL, "internal error while fetching the input")
                return
        if watch.lost:
            return
        if lifecycle.mark_ready(self.db, claim, input_key, self.clock()):
            log.info("task %s queuing", task.id)
            self.wakeup.notify()
        elif watch.stop.is_set() or self._cancel_pending(task.id):
            self._fail(claim, FailCode.CANCELED, "canceled by the owner")

    def _fetch_input(self, task: Task) -> str | None:
        url = task.input.get("image_url")
        if not isinstance(url, str):
            return None
        data = self.own_files.read(url, "input.image_url") if self.own_files else None
        if data is None:
            data = self.fetcher.get(url, field="input.image_url").data
        try:
            decoded = decode_image(data)
        except InvalidInput as error:
            raise InvalidInput(f"input.image_url: {error.message}") from error
        key = layout.input_key(task.account_id, task.id, decoded.mime_type)
        self.store.put_bytes(key, data)
        return key

    def _generate(self, claim: Claim) -> None:
        task = claim.task
        with self.store.staging() as folder, self._watched(claim) as watch:
            started = self.clock()
            try:
                job = self._job(task, folder, claim)

                def on_progress(done: float) -> None:
                    watch.progress = int(done * 99)

                engine = self._engine_for(task)
                result = engine.generate(job, on_progress, lambda: self._should_stop(task, watch))
            except GenerationCanceled:
                self._stopped(claim, watch)
                return
            except InvalidInput as error:
                self._fail(claim, FailCode.BAD_INPUT, error.message)
                return
            except GenerationFailed as error:
                self._fail(claim, FailCode.GENERATION_FAILED, error.message)
                return
            except EngineMisconfigured as error:
                self._mark_degraded(error.message)
                self._fail(claim, FailCode.INTERNAL, error.message)
                return
            except KinemaError as error:
                self._fail(claim, FailCode.INTERNAL, error.message)
                return
            except Exception:
                log.exception("task %s: the engine failed", task.id)
                self._fail(claim, FailCode.INTERNAL, "internal error while generating the video")
                return
            self.metrics.generation_seconds.observe((self.clock() - started) / 1000)
            if not watch.lost:
                # Still under the heartbeat: storing a large video takes a while.
                self._finish(claim, result)

    def _engine_for(self, task: Task) -> Engine:
        name = self.router.name_for(task.model)
        engine = self.engines.get(name)
        if engine is None:
            raise EngineUnavailable(f"no {name} engine runs in this worker")
        return engine

    def _mark_degraded(self, reason: str) -> None:
        """Tell `/readyz` (in whichever process serves it) that this worker's engine is broken."""
        if reason != self._degraded:
            self._degraded = reason
            with self.db.write() as connection:
                presence.set_degraded(connection, self.id, reason)

    def _job(self, task: Task, folder: Path, claim: Claim) -> GenerationJob:
        image = None
        if task.input_key is not None:
            with self.store.open_read(task.input_key) as source:
                image = decode_image(source.read()).pixels
        return GenerationJob(
            prompt=str(task.input.get("prompt", "")),
            image=image,
            duration_s=int(str(task.input.get("duration", "6"))),
            resolution=Resolution(str(task.input.get("resolution", Resolution.P768.value))),
            video_path=folder / "video.mp4",
            # The same task makes the same video on every attempt.
            seed=int(task.id[:8], 16),
            model=task.model,
            options=_engine_options(task),
            resume=task.engine_state or {},
            save_state=lambda state: self._save_engine_state(claim, state),
        )

    def _save_engine_state(self, claim: Claim, state: Mapping[str, str]) -> None:
        if not lifecycle.save_engine_state(self.db, claim, state, self.clock()):
            raise GenerationCanceled("the task is no longer this worker's")

    def _finish(self, claim: Claim, result: GenerationResult) -> None:
        task = claim.task
        keys = layout.result_keys(task.account_id, task.id, claim.attempt)
        self.store.put_file(keys["video"], result.video_path)
        self.store.put_file(keys["first_frame"], result.first_frame_path)
        self.store.put_file(keys["last_frame"], result.last_frame_path)
        if lifecycle.finish_success(self.db, claim, keys, self.clock()):
            log.info("task %s success", task.id)
            if self._degraded:
                self._mark_degraded("")
            self.metrics.finished.labels("success").inc()
            self._finished()
        else:
            # A newer attempt owns the task now; this one's files are nobody's.
            self.store.delete_prefix(layout.result_prefix(task.account_id, task.id, claim.attempt))

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
            self._finished()

    def _finished(self) -> None:
        self.on_finished()
        # A running slot of the account is free again: a held task may go.
        self.wakeup.notify()

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
        """Heartbeat the claim while the body runs."""
        watch = _Watch(stop=self.cancels.register(claim.task.id))
        beat = threading.Thread(
            target=self._beat, args=(claim, watch), name=f"kinema-beat-{claim.task.id[:8]}"
        )
        beat.start()
        try:
            yield watch
        finally:
            watch.done.set()
            beat.join()
            self.cancels.unregister(claim.task.id)

    def _beat(self, claim: Claim, watch: _Watch) -> None:
        while not watch.done.wait(self.options.heartbeat_s):
            try:
                pulse = lifecycle.heartbeat(
                    self.db,
                    claim.task.id,
                    claim.attempt,
                    self.clock(),
                    self.options.lease_ms,
                    watch.progress if claim.stage is Stage.GENERATE else None,
                )
            except Exception:
                log.exception("heartbeat of task %s failed", claim.task.id)
                continue
            if not pulse.owned:
                watch.lost = True
                watch.stop.set()
                return
            if pulse.cancel_requested:
                watch.stop.set()
