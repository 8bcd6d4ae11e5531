"""Engines in a child process of their own: real processes, crashing, hanging and running out of
memory as `ScriptedEngine`'s prompt says."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from tests.support.engines import InstantEngine, UnreadyEngine

from kinema.domain.errors import (
    EngineCrashed,
    EngineMisconfigured,
    EngineOutOfMemory,
    GenerationCanceled,
)
from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.isolated import EngineProcessError, IsolatedEngine, isolated

SCRIPTED = "tests.support.engines:ScriptedEngine"


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
