"""``POST /api/v1/kinema/camera-plan`` (ext): the camera plan a prompt gives, before it is sent.

A Kinema route of its own, beside the published ones (which it leaves as they are): the
playground shows its answer live under the prompt, so a typo in a camera command is seen
before any credit is spent. It needs no key: it reads only the text it is given.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from kinema.api.envelope import ok
from kinema.engines.prompt_camera import read_camera

router = APIRouter(prefix="/api/v1/kinema", tags=["kinema"])

#: The longest prompt any model of the catalog takes.
MAX_PROMPT = 5000


class CameraPlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, Field(max_length=MAX_PROMPT)]


EXAMPLE = {"prompt": "[Pan lft, Tilt up] A harbour at dawn [Push in]"}


@router.post("/camera-plan", summary="The camera plan a prompt gives, with unknown commands flagged (ext)")
def camera_plan(body: Annotated[CameraPlanRequest, Body(examples=[EXAMPLE])]) -> dict[str, Any]:
    """What the motion engine will do with the prompt's camera commands: `summary` in words,
    `segments` in turn (moves made at once, and their share of the clip), and `unknown`, each
    bracketed piece that names no command, with the command it most resembles."""
    return ok(read_camera(body.prompt).to_wire())
