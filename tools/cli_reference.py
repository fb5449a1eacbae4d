"""Write docs/cli.md from the `tosmon` commands' own --help (a test keeps the two in sync).

.venv/bin/python tools/cli_reference.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from monitor.cli import main

TARGET = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def reference() -> str:
    parts = [
        "# `tosmon` command reference\n",
        "Generated from `--help` by `tools/cli_reference.py`; do not edit by hand.\n",
    ]
    for path, command in _commands(main, ("tosmon",)):
        with click.Context(
            command,
            info_name=" ".join(path),
            terminal_width=80,
            max_content_width=80,
            help_option_names=main.context_settings["help_option_names"],
        ) as ctx:
            help_text = command.get_help(ctx)
        parts.append(f"## {' '.join(path)}\n\n```\n{help_text}\n```\n")
    return "\n".join(parts)


def _commands(
    command: click.Command, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found += _commands(command.commands[name], (*path, name))
    return found


if __name__ == "__main__":
    TARGET.write_text(reference(), encoding="utf-8")
    sys.stdout.write(f"wrote {TARGET}\n")
