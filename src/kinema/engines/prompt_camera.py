"""What a prompt asks of the camera, said back to the person who wrote it.

The motion engine reads camera commands from the prompt (`kinema.engines.motion.plan`) and
skips anything it does not know, so ``[Pan lft]`` silently gives the default push-in. This reads
the prompt the same way and names the plan in words ("Pan left, then Tilt up"), and every
bracketed piece that is no command, with the command it most resembles. The playground (through
``POST /api/v1/kinema/camera-plan``), ``kinema render`` and ``kinema generate`` all say this.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from kinema.engines.motion.plan import COMMAND_NAMES, CameraPlan, PlanSource, plan_camera, unknown_commands

_BY_FOLDED = {name.casefold(): name for name in COMMAND_NAMES.values()}


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A piece of bracketed text that names no camera command, so moves nothing by itself."""

    text: str  #: As written in the prompt, between its brackets.
    suggestion: str | None  #: The command it most resembles (``Pan left`` for ``Pan lft``), if any.

    @property
    def warning(self) -> str:
        """One sentence for a person: what is not a command, and what was probably meant."""
        hint = f"; did you mean [{self.suggestion}]?" if self.suggestion else ""
        return f"[{self.text}] is not a camera command{hint}"


@dataclass(frozen=True, slots=True)
class CameraReading:
    """The camera plan of a prompt, in words, with the bracketed text it ignores."""

    plan: CameraPlan
    unknown: tuple[UnknownCommand, ...]

    @property
    def summary(self) -> str:
        """The plan as one line: moves at once joined by ``+``, in turn by ``then``."""
        steps = ", then ".join(
            " + ".join(COMMAND_NAMES[move] for move in segment.moves) for segment in self.plan.segments
        )
        if self.plan.source is PlanSource.WORDS:
            return f"{steps} (read from the words)"
        if self.plan.source is PlanSource.DEFAULT:
            return f"{steps} (the default: no camera command found)"
        return steps

    def to_wire(self) -> dict[str, Any]:
        """The reading as the camera-plan route answers it."""
        return {
            "summary": self.summary,
            "source": self.plan.source.value,
            "segments": [
                {
                    "moves": [{"move": move.value, "name": COMMAND_NAMES[move]} for move in segment.moves],
                    "start": segment.start,
                    "end": segment.end,
                }
                for segment in self.plan.segments
            ],
            "unknown": [
                {"text": item.text, "suggestion": item.suggestion, "warning": item.warning}
                for item in self.unknown
            ],
        }


def read_camera(prompt: str) -> CameraReading:
    """The camera plan `prompt` gives, and each bracketed piece in it that is no command."""
    unknown = tuple(UnknownCommand(text, _closest(text)) for text in unknown_commands(prompt))
    return CameraReading(plan_camera(prompt), unknown)


def _closest(text: str) -> str | None:
    matches = difflib.get_close_matches(" ".join(text.casefold().split()), _BY_FOLDED, n=1, cutoff=0.6)
    return _BY_FOLDED[matches[0]] if matches else None
