"""The `kinema` Typer app and what its commands share."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

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


@app.callback()
def kinema() -> None:
    """Kinema: self-hosted image-to-video generation."""
