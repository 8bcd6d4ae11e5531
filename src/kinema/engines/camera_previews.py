"""Tiny looping previews of each camera command, made by the motion engine itself.

The playground shows one on each camera chip, on hover and focus, so the fifteen commands can
be learnt by seeing them. Each is the bundled sample picture filmed with that one command, at
160x90 for a second and a half, as an animated WebP of a few kilobytes. They are made on first
request and kept in a folder, so neither start-up nor a page pays for more than it shows.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from kinema.domain.video import FrameSize
from kinema.engines.motion.camera import plan_path
from kinema.engines.motion.plan import COMMAND_NAMES, CameraMove, plan_camera
from kinema.engines.motion.render import FrameRenderer

PREVIEW_SIZE = FrameSize(160, 90)
PREVIEW_FPS = 10
PREVIEW_FRAMES = 15
#: Bumped when the previews' look changes, so kept ones are made again.
PREVIEW_VERSION = 1


def render_preview(move: CameraMove, picture: bytes) -> bytes:
    """The preview of `move` on `picture` (JPEG, PNG or WebP bytes), as an animated WebP."""
    with Image.open(io.BytesIO(picture)) as opened:
        source = np.ascontiguousarray(np.asarray(opened.convert("RGB")))
    plan = plan_camera(f"[{COMMAND_NAMES[move]}]")
    path = plan_path(plan, PREVIEW_SIZE, PREVIEW_FRAMES, PREVIEW_FPS)
    renderer = FrameRenderer(source, path)
    frames = [Image.fromarray(renderer.render_rgb(index)) for index in range(PREVIEW_FRAMES)]
    out = io.BytesIO()
    frames[0].save(
        out,
        format="WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=1000 // PREVIEW_FPS,
        loop=0,
        quality=45,
        method=4,
    )
    return out.getvalue()


class CameraPreviews:
    """The previews, each made once on first need and kept as a file in `folder`."""

    def __init__(self, folder: Path, picture: bytes) -> None:
        self.folder = folder
        self.picture = picture
        self._locks = {move: threading.Lock() for move in CameraMove}

    def path(self, move: CameraMove) -> Path:
        return self.folder / f"v{PREVIEW_VERSION}" / f"{move.value}.webp"

    def get(self, move: CameraMove) -> bytes:
        """The preview of `move`, made now if no request made it before."""
        path = self.path(move)
        with self._locks[move]:  # two first requests for one chip make it once
            if path.exists():
                return path.read_bytes()
            data = render_preview(move, self.picture)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(path)  # whole or absent, for another process reading it
            return data
