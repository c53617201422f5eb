"""The README cannot drift from the CLI: every command and every exit code is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from loopsync.cli import app
from loopsync.exit_codes import ExitCode

README = (Path(__file__).parent.parent / "README.md").read_text()


def _commands(group, prefix: str = "") -> list[tuple[str, object]]:
    # Duck-typed: Typer may bring its own copy of Click, so isinstance checks against click.Group fail.
    found = []
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        if hasattr(command, "commands"):
            found.extend(_commands(command, full + " "))
        else:
            found.append((full, command))
    return found


COMMANDS = _commands(typer.main.get_command(app))


def test_every_command_has_help_and_is_in_the_readme():
    assert len(COMMANDS) >= 12
    for name, command in COMMANDS:
        assert (command.help or "").strip(), f"`loopsync {name}` has no help text"
        top = name.split()[0]
        assert f"loopsync {top}" in README, f"`loopsync {name}` is not documented in README.md"


def test_every_exit_code_is_in_the_readme_table():
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", README, flags=re.MULTILINE))
    assert {int(code) for code in table} == {int(code) for code in ExitCode}
