"""How an engine's process ended, and the messages between it and the worker."""

from __future__ import annotations

import pickle
import signal
from pathlib import Path

import numpy as np
import pytest

from kinema.domain.errors import (
    EngineCrashed,
    EngineMisconfigured,
    EngineOutOfMemory,
    GenerationCanceled,
    GenerationFailed,
    InvalidInput,
    KinemaError,
)
from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.isolated.events import Failed, FailureKind, Run, crossing, error_of, kind_of
from kinema.engines.isolated.exits import death_error, exit_words, oom_kill_files, oom_kills


def test_exits_in_words() -> None:
    assert exit_words(-signal.SIGSEGV) == "killed by signal SIGSEGV"
    assert exit_words(-signal.SIGKILL) == "killed by signal SIGKILL"
    assert exit_words(3) == "exited with status 3"
    assert exit_words(-200) == "killed by signal 200"


def test_a_sigkill_while_the_oom_killer_counted_is_running_out_of_memory() -> None:
    kill = -signal.SIGKILL
    assert isinstance(death_error(kill, 4, 5), EngineOutOfMemory)
    assert "out-of-memory killer" in death_error(kill, 4, 5).message
    crash = death_error(kill, 4, 4)
    assert isinstance(crash, EngineCrashed)
    assert crash.message == "the engine crashed (killed by signal SIGKILL)"
    assert isinstance(death_error(kill, None, None), EngineCrashed)  # no cgroup to ask
    assert isinstance(death_error(-signal.SIGSEGV, 4, 5), EngineCrashed)  # not the killer's signal
    assert death_error(1, None, None, starting=True).message == (
        "the engine crashed while starting (exited with status 1)"
    )


def test_the_oom_kill_count_is_read_from_cgroup_v2_or_v1(tmp_path: Path) -> None:
    v2 = tmp_path / "memory.events"
    v2.write_text("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n")
    v1 = tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n")
    assert oom_kills([tmp_path / "missing", v2, v1]) == 2
    assert oom_kills([v1]) == 7
    assert oom_kills([tmp_path / "missing"]) is None


def test_the_cgroup_files_looked_at_follow_proc_self_cgroup(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.write_text("0::/system.slice/kinema.service\n")
    assert oom_kill_files(v2)[:2] == [
        Path("/sys/fs/cgroup/system.slice/kinema.service/memory.events"),
        Path("/sys/fs/cgroup/memory.events"),
    ]
    v1 = tmp_path / "v1"
    v1.write_text("4:memory:/docker/abc\n0::/\n")
    assert Path("/sys/fs/cgroup/memory/docker/abc/memory.oom_control") in oom_kill_files(v1)
    assert Path("/sys/fs/cgroup/memory.events") in oom_kill_files(tmp_path / "missing")


@pytest.mark.parametrize(
    "error",
    [
        InvalidInput("resolution must be one of 512P"),
        EngineOutOfMemory("the GPU ran out of memory"),
        GenerationFailed("the model made too few frames"),
        GenerationCanceled("stopped"),
        EngineMisconfigured("no weights"),
        KinemaError("something else"),
    ],
)
def test_domain_errors_cross_as_kinds_and_come_back_the_same(error: KinemaError) -> None:
    failed = pickle.loads(pickle.dumps(Failed(1, kind_of(error), error.message)))
    back = error_of(failed)
    assert (type(back), back.message) == (type(error), error.message)
    assert failed.kind is not FailureKind.INTERNAL


def test_a_job_pickles_with_its_image(tmp_path: Path) -> None:
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    job = GenerationJob("a cat", image, 6, Resolution.P512, tmp_path / "v.mp4", resume={"k": "v"})
    crossed = pickle.loads(pickle.dumps(Run(7, crossing(job))))
    assert crossed.job_id == 7
    assert np.array_equal(crossed.job.image, image)
    assert (crossed.job.prompt, crossed.job.resume, crossed.job.video_path) == (
        "a cat",
        {"k": "v"},
        job.video_path,
    )
