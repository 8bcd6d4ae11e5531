"""How the motion engine is set up; built from ``KINEMA_MOTION_*`` settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MotionConfig:
    #: Film the still as a scene with depth (subject matte and depth cues); False: one flat plane.
    depth: bool = True
    #: Without the matte model's package: True films flat (and logs why), False refuses to start
    #: (`kinema render`, where the person asking is there to read the reason).
    flat_without_model: bool = True
