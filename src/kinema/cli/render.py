"""`kinema render`: a video from an image on this machine, without a server."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from kinema.cli.app import app, console, fail, warn_about_camera
from kinema.cli.service import load_settings
from kinema.domain.clock import system_clock
from kinema.domain.errors import KinemaError
from kinema.domain.video import Resolution
from kinema.engines.registry import engine_names


class Duration(StrEnum):
    """Clip lengths the engines make."""

    SIX = "6"  #: Six seconds.
    TEN = "10"  #: Ten seconds.


@app.command()
def render(
    image: Annotated[Path, typer.Argument(help="A JPEG, PNG or WebP image.", dir_okay=False)],
    prompt: Annotated[
        str, typer.Option("--prompt", "-p", help="What to film; camera commands like [Pan left].")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the MP4.", dir_okay=False)
    ] = Path("out.mp4"),
    duration: Annotated[Duration, typer.Option(help="Length in seconds.")] = Duration.SIX,
    resolution: Annotated[Resolution, typer.Option(help="Short side of the frame.")] = Resolution.P768,
    seed: Annotated[int, typer.Option(help="Same image, prompt and seed give the same video.")] = 0,
    engine: Annotated[str, typer.Option(help=f"Engine: {', '.join(engine_names())}.")] = "motion",
) -> None:
    """Render a video from IMAGE on this machine, without a server."""
    # Imported here: the client commands, which share this program, start without them.
    from kinema import runtime
    from kinema.engines.base import GenerationJob
    from kinema.engines.registry import load_engine
    from kinema.media.intake import decode_image

    started = time.perf_counter()
    warn_about_camera(prompt)
    try:
        data = image.read_bytes()
    except OSError as error:
        fail(f"cannot read {image}: {error.strerror or error}")
    try:
        decoded = decode_image(data)
        video_engine = load_engine(engine, runtime.engine_config(load_settings(), engine, None, system_clock))
        video_engine.setup()
        job = GenerationJob(
            prompt=prompt,
            image=decoded.pixels,
            duration_s=int(duration.value),
            resolution=resolution,
            video_path=output,
            seed=seed,
            # A remote engine maps the catalog's model to its own; render asks for the seed's.
            model="hailuo/2-3-image-to-video-standard",
        )
        with Progress(
            TextColumn("[bold]rendering"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            bar = progress.add_task("render", total=1.0)
            result = video_engine.generate(
                job, lambda done: progress.update(bar, completed=done), lambda: False
            )
    except KinemaError as error:
        fail(error.message)
    elapsed = time.perf_counter() - started
    console.print(
        f"[green]wrote[/] {result.video_path}: {result.size}, {result.frames} frames, "
        f"{result.duration_s:g} s of video in {elapsed:.1f} s"
    )
