"""The docs tell the truth: the CLI reference matches --help, the README's commands exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from monitor.cli import main
from tools.cli_reference import TARGET, reference

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_matches_the_help() -> None:
    assert TARGET.read_text(encoding="utf-8") == reference(), (
        "docs/cli.md is stale: run `.venv/bin/python tools/cli_reference.py`"
    )


def _readme_command_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                match = re.search(r"(?:^|/)tosmon(\s.*)?$", part)
                if match:
                    lines.append("tosmon" + (match.group(1) or ""))
    return lines


@pytest.mark.parametrize("line", _readme_command_lines())
def test_every_command_in_the_readme_exists_with_its_options(line: str) -> None:
    words = shlex.split(line)[1:]
    command: click.Command = main
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        name = words.pop(0)
        assert name in command.commands, f"README uses `tosmon {name}`, which does not exist"
        command = command.commands[name]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    known |= {"--help", "-h", "--config"}
    used = {w.split("=")[0] for w in words if w.startswith("-")}
    assert used <= known, f"{line}: unknown option(s) {sorted(used - known)}"


def test_the_readme_names_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in main.commands if f"tosmon {name}" not in readme]
    assert not missing, f"README does not show: {missing}"
