"""How the diffusers engine is set up; built from ``KINEMA_DIFFUSERS_*`` settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ModelFamily = Literal["wan", "ltx"]
Offload = Literal["none", "model", "group"]


@dataclass(frozen=True, slots=True)
class DiffusersConfig:
    model: ModelFamily  #: "wan" (Wan 2.2 TI2V-5B) or "ltx" (LTX-Video).
    weights_dir: Path | None  #: A diffusers folder on this machine; nothing is ever downloaded.
    offload: Offload = "none"  #: Keep parts on the CPU until needed, to fit smaller GPUs.
    vae_tiling: bool = False  #: Decode in tiles: less memory, a little slower.
    steps: int = 30  #: Denoising steps per clip.
    seed: int | None = None  #: None: each task's own seed (the same task, the same video).
    #: Pixels per frame the model generates (near the output's aspect ratio, then scaled to the
    #: output size); None: the model's native area (1280x704 for Wan 2.2, 768x512 for LTX).
    working_pixels: int | None = None
    #: Most frames one call of the model makes; longer videos continue from the last frame.
    #: None: the model's native length (121 for Wan 2.2, 257 for LTX).
    clip_frames: int | None = None
