"""What a person sees: help that shows every flag plainly, and a scan at a terminal that is never silent."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

import pytest
import typer

from loopsync.cli import app


def _commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found.extend(_commands(command, (*prefix, name)))
        else:
            found.append((*prefix, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "loopsync")
def test_help_shows_flags_without_a_value_placeholder(command, cli):
    result = cli([*command, "--help"])

    assert result.code == 0, result.output
    assert "<bool>" not in result.out, result.out
    assert "…" not in result.out, "help text was cut short"


def test_the_faults_help_is_shown_whole(cli):
    text = " ".join(cli(["sandbox", "serve", "--help"]).out.split())
    assert "'5xx=0.1, drop=0.05, throttle=0.1, slow=0.1:0.5, malformed=0.05, seed=7'" in text
    assert "(slow=RATE:SECONDS)" in text


def _scan_at_a_terminal(db) -> tuple[str, str]:
    """`loopsync scan` with stdout on a pseudo-terminal, as when someone types it."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "loopsync", "scan", "--db", str(db)],
            stdout=follower, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("LOOPSYNC_")} | {"COLUMNS": "120"},
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0, proc.stderr
    return b"".join(chunks).decode("utf-8", "replace"), proc.stderr


def test_a_scan_at_a_terminal_with_nothing_to_do_says_so(cli, connected):
    first = cli(["scan", "--db", str(connected)])
    assert first.code == 0, first.output

    out, err = _scan_at_a_terminal(connected)

    assert re.fullmatch(r"Nothing to do: \d+ orders read\.\n", err), err
    assert out == ""


def test_off_a_terminal_nothing_to_do_stays_quiet_for_cron(cli, connected):
    assert cli(["scan", "--db", str(connected)]).code == 0
    again = cli(["scan", "--db", str(connected)])
    assert again.code == 0 and again.out == "" and again.err == ""
