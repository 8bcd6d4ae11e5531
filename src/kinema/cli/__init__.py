"""The `kinema` command line: one Typer app, its commands in a module per feature."""

from __future__ import annotations

import typer

from kinema.cli import accounts, client, render, service
from kinema.cli.app import app
from kinema.cli.help import plain_help

__all__ = ["accounts", "app", "client", "main", "render", "service"]


def main() -> None:
    command = typer.main.get_command(app)
    plain_help(command)
    command()
