"""The `kinema` command line: one Typer app, its commands in a module per feature."""

from __future__ import annotations

from kinema.cli import accounts, client, render, service
from kinema.cli.app import app

__all__ = ["accounts", "app", "client", "main", "render", "service"]


def main() -> None:
    app()
