"""Bad input through the CLI: one clear sentence, the README's exit code, no traceback, nothing changed.

Mistakes also covered by reliability/test_bad_input.py (shop domains, unknown orders, revoked
credentials, files that are not state files) are tested there, once each, in its MISTAKES table."""

from __future__ import annotations

import json

import pytest

from loopsync import __version__
from loopsync.store import Store

USAGE, LOCKED = 2, 3


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


@pytest.mark.parametrize(
    "args",
    [["scan"], ["scan", "--dry-run"], ["release", "EXC-1086-1", "--yes"], ["disconnect", "--yes"]],
)
def test_commands_that_need_a_connection_say_so(cli, db, checks, args):
    result = cli([*args, "--db", str(db)])

    checks.clean_error(result, USAGE, "loopsync connect")
    assert not db.exists()


def test_a_state_file_without_a_connection(cli, db, checks):
    # The state file exists (a pre-order override was added) but connect was never run.
    assert cli(["preorders", "add", "123", "--window", "Spring", "--db", str(db)]).code == 0

    checks.clean_error(cli(["scan", "--db", str(db)]), USAGE, "loopsync connect")
    status = cli(["status", "--db", str(db), "--json"])
    assert status.code == 0 and json.loads(status.out)["connection"] is None
    assert "Not connected" in cli(["status", "--db", str(db)]).out


def test_a_second_scan_while_one_holds_the_lock_exits_3(cli, connected, probe, checks):
    store = Store.open(connected)
    try:
        with store.scan_lock():
            mark = probe.mark()
            result = cli(["scan", "--db", str(connected)])
    finally:
        store.close()

    checks.clean_error(result, LOCKED, "Another loopsync scan is running")
    assert probe.entries(mark) == []


def test_an_unknown_flag_is_a_usage_error_without_traceback(cli, connected):
    result = cli(["scan", "--db", str(connected), "--frobnicate"])

    assert result.code == USAGE
    assert "No such option" in result.err and "Traceback" not in result.output


def test_version(cli):
    result = cli(["--version"])

    assert result.code == 0
    assert result.out.strip() == __version__
