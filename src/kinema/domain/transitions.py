"""The task's state machine: every change of a task's state is one of these moves.

The store writes a state only through a `Move`: its ``WHERE`` takes the move's sources, and its
new state is the move's target for the source it found, so a write that the table does not
allow matches no row. Moves a worker makes while it holds the task (`Move.held`) also name the
attempt it claimed, so a worker that lost its lease can never overwrite a newer one's work.

```
            claim intake, requeue, release
              ┌──────┐
              ▼      │       intake done          claim           succeed
   create ─▶ waiting ┴──────────────────▶ queuing ──────▶ generating ──────▶ success
              │                           ▲   │           │  │
              │                           │   │           │  └── requeue, release ──▶ queuing
              └─── fail, cancel, expire ──┴───┴───────────┴──▶ fail
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

from kinema.domain.task import TaskState

W, Q, G = TaskState.WAITING, TaskState.QUEUING, TaskState.GENERATING
S, F = TaskState.SUCCESS, TaskState.FAIL

#: Which states a task may go to from each state. A terminal state goes nowhere.
ALLOWED: Final[Mapping[TaskState, frozenset[TaskState]]] = MappingProxyType(
    {
        W: frozenset({W, Q, F}),
        Q: frozenset({G, F}),
        G: frozenset({Q, S, F}),
        S: frozenset(),
        F: frozenset(),
    }
)


@dataclass(frozen=True, slots=True)
class _Shape:
    targets: Mapping[TaskState, TaskState]  #: The new state for each state the move starts from.
    held: bool  #: Made by the worker holding the task: fenced by the attempt it claimed.


class Move(Enum):
    """A named change of a task's state, with the states it starts from and where each goes."""

    #: A worker takes a waiting task to fetch its input; it stays waiting, now leased.
    CLAIM_INTAKE = _Shape({W: W}, held=False)
    #: The input was fetched and checked: the task joins the queue, unleased.
    INTAKE_DONE = _Shape({W: Q}, held=True)
    #: A worker takes a queued task and starts the engine.
    CLAIM_GENERATE = _Shape({Q: G}, held=False)
    #: The engine made the video.
    SUCCEED = _Shape({G: S}, held=True)
    #: The worker gives up on the task (bad input, the engine failed, canceled mid-work).
    FAIL = _Shape({W: F, G: F}, held=True)
    #: The worker is shutting down and hands the task back unfinished; no attempt is spent.
    RELEASE = _Shape({W: W, G: Q}, held=True)
    #: The owner cancels a task no worker holds.
    CANCEL = _Shape({W: F, Q: F}, held=False)
    #: The task ran past its deadline, wherever it was.
    EXPIRE = _Shape({W: F, Q: F, G: F}, held=False)
    #: Its worker vanished (the lease lapsed), or its engine's process died: back to where it
    #: was before the claim.
    REQUEUE = _Shape({W: W, G: Q}, held=False)
    #: Its worker vanished once too often, or the owner had asked to cancel it.
    ABANDON = _Shape({W: F, G: F}, held=False)

    @property
    def targets(self) -> Mapping[TaskState, TaskState]:
        return self.value.targets

    @property
    def sources(self) -> frozenset[TaskState]:
        return frozenset(self.value.targets)

    @property
    def held(self) -> bool:
        return self.value.held

    def target(self, source: TaskState) -> TaskState:
        """Where this move takes a task in `source`; `IllegalMove` if it does not start there."""
        found = self.value.targets.get(source)
        if found is None:
            raise IllegalMove(self, source)
        return found


class IllegalMove(ValueError):
    """A move asked of a task in a state it does not start from (a bug, never a user's error)."""

    def __init__(self, move: Move, source: TaskState) -> None:
        super().__init__(f"{move.name} does not start from {source.value}")
        self.move = move
        self.source = source


def is_allowed(source: TaskState, target: TaskState) -> bool:
    return target in ALLOWED[source]


UNFINISHED: Final = frozenset(state for state in TaskState if not state.is_terminal)


def _check_table() -> None:
    for move in Move:
        for source, target in move.targets.items():
            if not is_allowed(source, target):  # pragma: no cover - a mistake in the table above
                raise AssertionError(f"{move.name}: {source.value} -> {target.value} is not allowed")


_check_table()
