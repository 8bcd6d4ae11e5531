"""Generation: a claimed task becomes an engine's job, and the engine's video becomes its result.

What an engine raised decides how the task fails (`failure_of`); the result files go where the
storage layout says, under the attempt that made them, so a stale attempt's files are never
mistaken for the finishing one's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kinema.domain.clock import Clock
from kinema.domain.errors import (
    EngineCrashed,
    EngineUnavailable,
    GenerationFailed,
    InvalidInput,
    KinemaError,
)
from kinema.domain.task import FailCode, Task
from kinema.domain.video import Resolution
from kinema.engines.base import Engine, GenerationJob, GenerationResult
from kinema.engines.routing import EngineRouter
from kinema.media.intake import decode_image
from kinema.storage import layout
from kinema.storage.base import BlobStore
from kinema.store.database import Database
from kinema.tasks import lifecycle
from kinema.tasks.lifecycle import Claim


@dataclass(frozen=True, slots=True)
class GeneratePorts:
    db: Database
    store: BlobStore
    engines: Mapping[str, Engine]  #: The engines this worker runs, by name.
    router: EngineRouter
    clock: Clock


def engine_for(ports: GeneratePorts, task: Task) -> Engine:
    name = ports.router.name_for(task.model)
    engine = ports.engines.get(name)
    if engine is None:
        raise EngineUnavailable(f"no {name} engine runs in this worker")
    return engine


def job_for(
    ports: GeneratePorts, task: Task, folder: Path, save_state: Callable[[Mapping[str, str]], None]
) -> GenerationJob:
    """The engine's job for `task`, writing its video into `folder`."""
    image = None
    if task.input_key is not None:
        with ports.store.open_read(task.input_key) as source:
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
        options=engine_options(task),
        resume=task.engine_state or {},
        save_state=save_state,
    )


def engine_options(task: Task) -> dict[str, str]:
    """Inputs beyond the common ones that an engine may use (MiniMax's prompt optimiser)."""
    options: dict[str, str] = {}
    optimizer = task.input.get("prompt_optimizer")
    if isinstance(optimizer, bool):
        options["prompt_optimizer"] = "true" if optimizer else "false"
    return options


def failure_of(error: KinemaError) -> tuple[FailCode, str]:
    """How a task fails for what the engine (or the job's making) raised.

    Running out of memory is a `GenerationFailed` (501); a crash of the engine's process, once
    no attempt is left (see `retry`), is ours (500).
    """
    if isinstance(error, InvalidInput):
        return FailCode.BAD_INPUT, error.message
    if isinstance(error, GenerationFailed):
        return FailCode.GENERATION_FAILED, error.message
    return FailCode.INTERNAL, error.message  # crashed, misconfigured, unavailable, or ours


def retry(ports: GeneratePorts, claim: Claim, error: KinemaError, max_attempts: int) -> bool:
    """Whether the task goes back to the queue for another attempt instead of failing: only when
    the engine's process died (`EngineCrashed`), which the next attempt need not repeat, and
    while attempts are left. A failure the engine reported, running out of memory included,
    would come again with the same input, so it fails the task at once."""
    if not isinstance(error, EngineCrashed):
        return False
    return lifecycle.retry(ports.db, claim, ports.clock(), max_attempts)


def keep_result(ports: GeneratePorts, claim: Claim, result: GenerationResult) -> bool:
    """Store the result files and finish the task; False (and the files gone) if a newer
    attempt owns the task by now."""
    task = claim.task
    keys = layout.result_keys(task.account_id, task.id, claim.attempt)
    ports.store.put_files(
        {
            keys["video"]: result.video_path,
            keys["first_frame"]: result.first_frame_path,
            keys["last_frame"]: result.last_frame_path,
        }
    )
    if lifecycle.finish_success(ports.db, claim, keys, ports.clock()):
        return True
    ports.store.delete_prefix(layout.result_prefix(task.account_id, task.id, claim.attempt))
    return False
