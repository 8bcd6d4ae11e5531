"""The `kinema` Typer app and what its commands share."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from kinema.engines.prompt_camera import read_camera

app = typer.Typer(
    name="kinema",
    help="Kinema: self-hosted image-to-video generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: Progress and messages go to stderr, so that stdout carries only results (a key, a path).
console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def warn_about_camera(prompt: str) -> None:
    """A warning on stderr for each bracketed piece of `prompt` that is no camera command."""
    reading = read_camera(prompt)
    for unknown in reading.unknown:
        console.print(f"[yellow]warning:[/] {escape(unknown.warning)}", highlight=False, soft_wrap=True)
    if reading.unknown:
        console.print(f"camera: {escape(reading.summary)}", highlight=False, soft_wrap=True)


@app.callback()
def kinema() -> None:
    """Kinema: self-hosted image-to-video generation."""
