"""What the worker and an engine's own process say to each other, over one pipe.

Every message is a small frozen dataclass that pickles. Messages about a job carry its number,
so a late word about an earlier job is never taken for the current one's. Callables do not
cross processes: the job's `save_state` becomes `StateSaved`, answered by `StateKept`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from kinema.domain.errors import (
    EngineMisconfigured,
    EngineOutOfMemory,
    EngineUnavailable,
    GenerationCanceled,
    GenerationFailed,
    InvalidInput,
    KinemaError,
)
from kinema.engines.base import GenerationJob, GenerationResult

#: The job number of what happens before any job: setting the engine up.
SETUP: Final = 0


# From the worker to the engine's process.


@dataclass(frozen=True, slots=True)
class Run:
    """Make this job's video (its `save_state` is a stand-in: saves go back as `StateSaved`)."""

    job_id: int
    job: GenerationJob


def crossing(job: GenerationJob) -> GenerationJob:
    """`job` as it crosses to the engine's process: its `save_state` (which does not pickle)
    left behind; the process puts its own in."""
    return replace(job, save_state=_left_behind)


def _left_behind(_state: Mapping[str, str]) -> None:
    """The `save_state` of a job on its way."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop that job at its next cancel check."""

    job_id: int


@dataclass(frozen=True, slots=True)
class StateKept:
    """The answer to `StateSaved`: whether the state was kept (False: the task is no longer ours)."""

    job_id: int
    kept: bool


@dataclass(frozen=True, slots=True)
class Close:
    """Finish what runs and exit."""


# From the engine's process to the worker.


@dataclass(frozen=True, slots=True)
class Ready:
    """The engine is set up; jobs may come."""

    pid: int


@dataclass(frozen=True, slots=True)
class Progress:
    job_id: int
    done: float  #: The fraction of the job done, from 0.0 to 1.0.


@dataclass(frozen=True, slots=True)
class StateSaved:
    """The engine saved state for a later attempt; it waits for `StateKept` before going on."""

    job_id: int
    state: dict[str, str]


@dataclass(frozen=True, slots=True)
class Done:
    job_id: int
    result: GenerationResult


class FailureKind(StrEnum):
    """What kind of error ended a job (or the setup), so the worker raises the same one."""

    INVALID_INPUT = "invalid_input"  #: `InvalidInput`: the job breaks one of the engine's rules.
    OUT_OF_MEMORY = "out_of_memory"  #: `EngineOutOfMemory`, `MemoryError` or the GPU's out of memory.
    FAILED = "failed"  #: `GenerationFailed`: the engine could not make the video.
    CANCELED = "canceled"  #: `GenerationCanceled`: the job stopped when asked to.
    MISCONFIGURED = "misconfigured"  #: `EngineMisconfigured`: no job can work as configured.
    UNAVAILABLE = "unavailable"  #: `EngineUnavailable`: a dependency of the engine is missing.
    OTHER = "other"  #: Another `KinemaError`: its message is meant for the user.
    INTERNAL = "internal"  #: Any other exception, a bug: its traceback is for the log only.


@dataclass(frozen=True, slots=True)
class Failed:
    """The job (or, with job `SETUP`, the setup) ended with an error."""

    job_id: int
    kind: FailureKind
    message: str
    trace: str = ""  #: The traceback, for the worker's log; never shown to a user.


ToEngine = Run | Cancel | StateKept | Close
FromEngine = Ready | Progress | StateSaved | Done | Failed

#: Most specific first: the first class an error is an instance of names its kind.
_KINDS: Final[tuple[tuple[type[KinemaError], FailureKind], ...]] = (
    (InvalidInput, FailureKind.INVALID_INPUT),
    (EngineOutOfMemory, FailureKind.OUT_OF_MEMORY),
    (GenerationFailed, FailureKind.FAILED),
    (GenerationCanceled, FailureKind.CANCELED),
    (EngineMisconfigured, FailureKind.MISCONFIGURED),
    (EngineUnavailable, FailureKind.UNAVAILABLE),
    (KinemaError, FailureKind.OTHER),
)
_ERRORS: Final[dict[FailureKind, type[KinemaError]]] = {kind: error for error, kind in _KINDS}

OUT_OF_MEMORY_MESSAGE: Final = "the engine ran out of memory"


def kind_of(error: KinemaError) -> FailureKind:
    return next(kind for cls, kind in _KINDS if isinstance(error, cls))


def error_of(failed: Failed) -> KinemaError:
    """The domain error a `Failed` stands for (not for `FailureKind.INTERNAL`)."""
    return _ERRORS[failed.kind](failed.message)
