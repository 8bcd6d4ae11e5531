"""Help pages that read as plain text: ``IMAGE``, not ``{image}``; ``--help``, not ``--help <bool>``.

Typer writes a required argument in the usage line as ``{name}`` and gives every flag a type
column of ``<bool>``, which says nothing a flag does not. `plain_help` adjusts the built command
tree once, before it runs.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperOption


class _PlainArgument(TyperArgument):
    """An argument named in capitals in the usage line, bare when required, in [...] when not."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name if self.nargs == 1 else f"{name}..."


def plain_help(command: Any, parent: Any = None) -> None:
    """Adjust `command` (a Typer command or group, built) and every subcommand under it."""
    context = command.context_class(command, parent=parent, info_name=command.name)
    for param in command.params:
        if isinstance(param, TyperArgument):
            param.metavar = param.metavar or (param.name or "").upper()
            param.__class__ = _PlainArgument
        elif isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # no type column: a flag takes no value
    help_option = command.get_help_option(context)
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub, context)
