"""Engines in a child process of their own: real processes, crashing, hanging and running out of
memory as `ScriptedEngine`'s prompt says, under a real worker on a real database."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from tests.conftest import MakeSettings
from tests.support.clock import FakeClock
from tests.support.engines import InstantEngine, UnreadyEngine
from tests.support.polling import wait_for

from kinema import runtime
from kinema.accounts import credits, keys
from kinema.domain.clock import Clock, system_clock
from kinema.domain.errors import (
    EngineCrashed,
    EngineMisconfigured,
    EngineOutOfMemory,
    GenerationCanceled,
)
from kinema.domain.task import Task, TaskState
from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.isolated import EngineProcessError, IsolatedEngine, isolated
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import NewTask
from kinema.worker.runner import Worker

SCRIPTED = "tests.support.engines:ScriptedEngine"
HOUR_MS = 3_600_000


def _job(
    prompt: str, folder: Path, save_state: Callable[[Mapping[str, str]], None] | None = None
) -> GenerationJob:
    job = GenerationJob(prompt, None, 6, Resolution.P512, folder / "video.mp4")
    return job if save_state is None else replace(job, save_state=save_state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def scripted() -> Iterator[IsolatedEngine]:
    engine = isolated(SCRIPTED, stop_grace_s=0.5)
    engine.setup()
    yield engine
    engine.close()


# The engine on its own.


def test_progress_and_saved_state_cross_back_and_the_result_comes(
    scripted: IsolatedEngine, tmp_path: Path
) -> None:
    saved: list[Mapping[str, str]] = []
    progress: list[float] = []
    result = scripted.generate(_job("succeed", tmp_path, saved.append), progress.append, lambda: False)
    assert progress == [0.25, 0.5, 0.75, 1.0]
    pid = scripted.process_id
    assert pid is not None
    assert pid != os.getpid()
    assert saved == [{"pid": str(pid)}]  # saved by the child, kept by this process
    assert (result.frames, result.fps) == (150, 25)
    assert result.video_path.read_bytes().startswith(b"\x00\x00\x00\x18ftyp")


@pytest.mark.parametrize(
    ("prompt", "words"),
    [("segfault", "killed by signal SIGSEGV"), ("exit", "exited with status 3")],
)
def test_a_dead_child_is_a_crash_and_a_fresh_one_takes_the_next_job(
    scripted: IsolatedEngine, tmp_path: Path, prompt: str, words: str
) -> None:
    first = scripted.process_id
    with pytest.raises(EngineCrashed) as caught:
        scripted.generate(_job(prompt, tmp_path), lambda _: None, lambda: False)
    assert caught.value.message == f"the engine crashed ({words})"
    assert first is not None
    assert not _alive(first)
    scripted.generate(_job("succeed", tmp_path), lambda _: None, lambda: False)
    assert scripted.process_id not in (None, first)


def test_kill_9_from_outside_is_a_crash(scripted: IsolatedEngine, tmp_path: Path) -> None:
    pid = scripted.process_id
    assert pid is not None
    progress: list[float] = []

    def kill_once_started() -> bool:
        if progress and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        return False

    with pytest.raises(EngineCrashed, match=r"^the engine crashed \(killed by signal SIGKILL\)$"):
        scripted.generate(_job("wait", tmp_path), progress.append, kill_once_started)


def test_running_out_of_memory_says_so_and_replaces_the_child(
    scripted: IsolatedEngine, tmp_path: Path
) -> None:
    first = scripted.process_id
    with pytest.raises(EngineOutOfMemory, match=r"^the engine ran out of memory$"):
        scripted.generate(_job("oom", tmp_path), lambda _: None, lambda: False)
    assert first is not None
    assert not _alive(first)
    scripted.generate(_job("succeed", tmp_path), lambda _: None, lambda: False)


def test_a_child_deaf_to_cancel_is_killed_after_the_grace_period(
    scripted: IsolatedEngine, tmp_path: Path
) -> None:
    first = scripted.process_id
    progress: list[float] = []
    with pytest.raises(GenerationCanceled, match=r"did not stop within 0\.5 s and was killed"):
        scripted.generate(_job("hang", tmp_path), progress.append, lambda: bool(progress))
    assert first is not None
    assert not _alive(first)
    scripted.generate(_job("succeed", tmp_path), lambda _: None, lambda: False)


def test_a_cancel_stops_the_job_and_the_child_stays(scripted: IsolatedEngine, tmp_path: Path) -> None:
    first = scripted.process_id
    progress: list[float] = []
    with pytest.raises(GenerationCanceled, match=r"^stopped$"):
        scripted.generate(_job("wait", tmp_path), progress.append, lambda: bool(progress))
    assert scripted.process_id == first


def test_a_refused_save_stops_the_job_with_the_savers_error(scripted: IsolatedEngine, tmp_path: Path) -> None:
    def refuse(_state: Mapping[str, str]) -> None:
        raise GenerationCanceled("the task is no longer this worker's")

    with pytest.raises(GenerationCanceled, match="no longer this worker's"):
        scripted.generate(_job("succeed", tmp_path, refuse), lambda _: None, lambda: False)
    first = scripted.process_id
    scripted.generate(_job("succeed", tmp_path), lambda _: None, lambda: False)
    assert scripted.process_id == first


def test_a_bug_in_the_engine_is_logged_with_its_traceback(
    scripted: IsolatedEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, "kinema.engines.isolated"),
        pytest.raises(EngineProcessError, match="ValueError: a bug in the engine"),
    ):
        scripted.generate(_job("bug", tmp_path), lambda _: None, lambda: False)
    assert 'raise ValueError("a bug in the engine")' in caplog.text


def test_setup_errors_are_raised_by_setup() -> None:
    engine = IsolatedEngine(UnreadyEngine)
    with pytest.raises(EngineMisconfigured, match=r"^the engine's weights are missing$"):
        engine.setup()
    assert engine.process_id is None
    engine.close()


def test_an_engine_that_cannot_cross_to_a_process_is_a_clear_error() -> None:
    with pytest.raises(EngineMisconfigured, match="cannot run in a process of its own"):
        IsolatedEngine(lambda: InstantEngine())


def test_closing_ends_the_child(tmp_path: Path) -> None:
    engine = isolated(SCRIPTED)
    engine.setup()
    pid = engine.process_id
    engine.close()
    assert pid is not None
    assert not _alive(pid)
    with pytest.raises(GenerationCanceled):
        engine.generate(_job("succeed", tmp_path), lambda _: None, lambda: False)


# Under a worker, on a database.


@pytest.fixture
def account(db: Database) -> str:
    with db.write() as connection:
        return keys.open_account(connection, "a", 1000, system_clock()).record.account_id


def _queue(db: Database, account_id: str, prompt: str, now: int) -> str:
    new = NewTask("m", "{}", {"prompt": prompt, "duration": 6, "resolution": "512P"}, None, 30, ready=True)
    with db.write() as connection:
        return lifecycle.create_task(connection, account_id, new, now, HOUR_MS).id


def _task(db: Database, task_id: str) -> Task:
    with db.read() as connection:
        task = lifecycle.get_task(connection, task_id)
    assert task is not None
    return task


def _ended(db: Database, task_id: str) -> Task | None:
    task = _task(db, task_id)
    return task if task.state.is_terminal else None


@contextmanager
def _worker(
    make_settings: MakeSettings, db: Database, clock: Clock = system_clock, **overrides: object
) -> Iterator[tuple[Worker, IsolatedEngine]]:
    values: dict[str, object] = {
        "engine": SCRIPTED,
        "engine_process": [SCRIPTED],
        "engine_stop_grace_seconds": 0.5,
        "workers": 1,
        "intake_threads": 1,
        "max_attempts": 2,
    }
    settings = make_settings(**(values | overrides))
    worker = runtime.build_worker(settings, db, clock=clock)
    engine = worker.engines[SCRIPTED]
    assert isinstance(engine, IsolatedEngine)
    worker.start()
    try:
        yield worker, engine
    finally:
        worker.stop()


def test_a_crash_goes_back_to_the_queue_then_fails_with_the_reason_and_the_worker_goes_on(
    make_settings: MakeSettings, db: Database, account: str
) -> None:
    now = system_clock()
    crashing = _queue(db, account, "segfault", now)
    once = _queue(db, account, "crash once", now + 1)
    fine = _queue(db, account, "succeed", now + 2)
    with _worker(make_settings, db):
        failed = wait_for(lambda: _ended(db, crashing), 60, "the crashing task to fail")
        resumed = wait_for(lambda: _ended(db, once), 60, "the task that crashes once")
        succeeded = wait_for(lambda: _ended(db, fine), 60, "the next task")

    assert (failed.state, failed.fail_code) == (TaskState.FAIL, "500")
    assert failed.fail_msg == "the engine crashed (killed by signal SIGSEGV)"
    assert (failed.attempt, failed.lapses) == (2, 1)  # KINEMA_MAX_ATTEMPTS=2
    # Its state, saved before the crash, came to the second attempt.
    assert (resumed.state, resumed.attempt) == (TaskState.SUCCESS, 2)
    assert resumed.engine_state is not None
    assert resumed.engine_state["crashed"] == "yes"
    assert (succeeded.state, succeeded.attempt) == (TaskState.SUCCESS, 1)
    with db.read() as connection:
        assert credits.balance(connection, account) == 1000 - 2 * 30  # the failed one refunded


def test_out_of_memory_fails_at_once_with_a_clear_reason(
    make_settings: MakeSettings, db: Database, account: str
) -> None:
    now = system_clock()
    hungry = _queue(db, account, "oom", now)
    fine = _queue(db, account, "succeed", now + 1)
    with _worker(make_settings, db):
        failed = wait_for(lambda: _ended(db, hungry), 60, "the task out of memory")
        succeeded = wait_for(lambda: _ended(db, fine), 60, "the next task")
    assert (failed.state, failed.fail_code, failed.attempt) == (TaskState.FAIL, "501", 1)
    assert failed.fail_msg == "the engine ran out of memory"
    assert succeeded.state is TaskState.SUCCESS


def test_a_hang_past_the_deadline_is_killed_and_the_task_times_out(
    make_settings: MakeSettings, db: Database, account: str
) -> None:
    clock = FakeClock()
    stuck = _queue(db, account, "hang", clock())
    with _worker(make_settings, db, clock) as (_, engine):
        wait_for(lambda: _task(db, stuck).progress > 0, 60, "the engine to start")
        pid = engine.process_id
        clock.advance(HOUR_MS)
        failed = wait_for(lambda: _ended(db, stuck), 60, "the task to time out")
        assert pid is not None
        wait_for(lambda: not _alive(pid), 30, "the hung process to be killed")
        fine = _queue(db, account, "succeed", clock())
        succeeded = wait_for(lambda: _ended(db, fine), 60, "the next task")
    assert (failed.fail_code, failed.fail_msg) == ("504", "the task ran past its deadline")
    assert succeeded.state is TaskState.SUCCESS
    assert succeeded.engine_state is not None
    assert succeeded.engine_state["pid"] != str(pid)


def test_a_cancel_reaches_the_engine_within_a_heartbeat(
    make_settings: MakeSettings, db: Database, account: str
) -> None:
    waiting = _queue(db, account, "wait", system_clock())
    # A cancel unanswered for 60 s would kill the process: the task must end long before that.
    with _worker(make_settings, db, engine_stop_grace_seconds=60) as (_, engine):
        wait_for(lambda: _task(db, waiting).progress > 0, 60, "the engine to start")
        pid = engine.process_id
        lifecycle.cancel_task(db, account, waiting, system_clock())
        canceled = wait_for(lambda: _ended(db, waiting), 10, "the cancel")
        assert engine.process_id == pid  # stopped by its own cancel check, not killed
    assert (canceled.fail_code, canceled.fail_msg) == ("499", "canceled by the owner")


def test_a_stopping_worker_kills_a_hung_engine_and_hands_the_task_back(
    make_settings: MakeSettings, db: Database, account: str
) -> None:
    stuck = _queue(db, account, "hang", system_clock())
    with _worker(make_settings, db) as (worker, engine):
        wait_for(lambda: _task(db, stuck).progress > 0, 60, "the engine to start")
        pid = engine.process_id
        worker.stop()
        assert pid is not None
        assert not _alive(pid)
        assert engine.process_id is None
    task = _task(db, stuck)
    assert (task.state, task.lapses) == (TaskState.QUEUING, 0)


def test_only_the_engines_named_run_in_a_process_of_their_own(
    make_settings: MakeSettings, db: Database
) -> None:
    settings = make_settings(engine=SCRIPTED)
    assert settings.engine_process == ["diffusers"]
    engines = runtime.load_engines(settings, db, system_clock)
    assert not isinstance(engines[SCRIPTED], IsolatedEngine)
    named = runtime.load_engines(make_settings(engine=SCRIPTED, engine_process=[SCRIPTED]), db, system_clock)
    assert isinstance(named[SCRIPTED], IsolatedEngine)
    assert named[SCRIPTED].info.name == "scripted"
