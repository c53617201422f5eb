"""The README cannot drift from the CLI: every command and every exit code is documented.

One case per command (sqlite-utils' `tests/test_docs.py`), subcommands included: a
missing `config unset` is its own failure, not hidden behind a documented `config`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from loopsync.cli import app
from loopsync.exit_codes import ExitCode

README = (Path(__file__).parent.parent / "README.md").read_text()


def _commands(group, prefix: str = "") -> list[tuple[str, object]]:
    # Duck-typed: Typer may bring its own copy of Click, so isinstance checks against click.Group fail.
    found = []
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        found.append((full, command))
        if hasattr(command, "commands"):
            found.extend(_commands(command, full + " "))
    return found


COMMANDS = _commands(typer.main.get_command(app))
GROUPS = [name for name, command in COMMANDS if hasattr(command, "commands")]


def _words(usage: str) -> list[str]:
    """The command words at the start of a usage text: `config set KEY VALUE` → config, set."""
    words = []
    for word in usage.split():
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        words.append(word)
    return words


def _table_commands() -> set[str]:
    """Commands named in the README's command tables, where one row lists a group's
    subcommands as alternatives: `loopsync config list \\| set KEY VALUE \\| unset KEY`."""
    names = set()
    for usage in re.findall(r"^\| `loopsync ([^`]+)` \|", README, flags=re.MULTILINE):
        first, *others = re.split(r" \\\| ", usage)
        words = _words(first)
        names.add(" ".join(words))
        group = words[:-1]
        names.update(" ".join(group + _words(other)) for other in others)
    return names


DOCUMENTED = _table_commands()


def test_every_command_is_found():
    # The parametrized cases below prove nothing if the walk finds no subcommands.
    assert {"config unset", "preorders add", "sandbox serve", "scan"} <= {name for name, _ in COMMANDS}


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_command_has_help_text(name, command):
    assert (command.help or "").strip(), f"`loopsync {name}` has no help text"


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
def test_command_is_in_the_readme(name):
    assert name in DOCUMENTED or f"loopsync {name}" in README, f"`loopsync {name}` is not documented in README.md"


def _summary(command) -> str:
    """What a group's --help should list for a command: its short help, or its help's whole first paragraph."""
    return " ".join((command.short_help or command.help.split("\n\n")[0]).split())


@pytest.mark.parametrize("group", ["", *GROUPS], ids=lambda g: f"loopsync {g}".strip())
def test_command_summaries_are_not_cut(cli, group):
    # Click cuts a summary that is too long with "...", and one with "e.g." at its first full stop.
    result = cli([*group.split(), "--help"], env={"COLUMNS": "80"})
    assert result.code == 0, result.output
    listed = dict(line.split(None, 1) for line in result.out.split("Commands:", 1)[1].strip().splitlines())
    prefix = f"{group} " if group else ""
    for name, command in COMMANDS:
        if name.startswith(prefix) and " " not in name[len(prefix):]:
            shown = name[len(prefix):]
            assert listed[shown].strip() == _summary(command), f"`loopsync {group} --help` cuts `{shown}`'s summary"


def test_every_exit_code_is_in_the_readme_table():
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", README, flags=re.MULTILINE))
    assert {int(code) for code in table} == {int(code) for code in ExitCode}
