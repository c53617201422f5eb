"""Commands that only look (`status`, `preorders list`, `config list`, `history`, `explain`) never
create or change the state file, and work on one they cannot write: a 0400 file, a read-only
directory, a scan's live WAL."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

LOOKING = [["status", "--json"], ["preorders", "list", "--json"], ["config", "list", "--json"]]


def _ids(args):
    return " ".join(a for a in args if a != "--json")


@contextmanager
def unwritable(target: Path):
    """``target`` (a file or a directory) cannot be written, also by root, for whom chmod is not enough."""
    if os.geteuid() != 0:
        mode = target.stat().st_mode
        target.chmod(0o500 if target.is_dir() else 0o400)
        try:
            yield
        finally:
            target.chmod(mode)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: cannot make a file read-only")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(target)], check=True)


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def state(cli, connected, probe) -> Path:
    """A connected state file with an override and a changed setting, closed as a finished command leaves it."""
    assert cli(["preorders", "add", "42", "--window", "Late March 2027", "--db", str(connected)]).code == 0
    assert cli(["config", "set", "note_label", "PreProduct", "--db", str(connected)]).code == 0
    assert not Path(f"{connected}-wal").exists()
    return connected


def _looks_right(args, result) -> None:
    assert result.code == 0, result.output
    doc = json.loads(result.out)
    if args[0] == "status":
        assert doc["connection"]["shop"] == "sandbox-store.myshopify.com"
    elif args[0] == "preorders":
        assert doc == [{"variant_id": "gid://shopify/ProductVariant/42", "window": "Late March 2027"}]
    else:
        assert doc["note_label"] == "PreProduct"
    assert "needs to write" not in result.err


@pytest.mark.parametrize("args", LOOKING, ids=_ids)
@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_state_file_can_be_looked_at(args, what, cli, state):
    before = _listing(state.parent)

    with unwritable(state if what == "file" else state.parent):
        result = cli([*args, "--db", str(state)])

    _looks_right(args, result)
    assert _listing(state.parent) == before, "a read-only command created or changed a file"


@pytest.mark.parametrize("args", LOOKING, ids=_ids)
def test_looking_leaves_a_writable_state_file_untouched(args, cli, state):
    before = _listing(state.parent)
    _looks_right(args, cli([*args, "--db", str(state)]))
    assert _listing(state.parent) == before


@pytest.mark.parametrize("args", LOOKING, ids=_ids)
def test_a_running_scans_changes_are_seen_in_a_read_only_directory(args, cli, state):
    # A writer (a scan in progress) has committed to the WAL, not yet to the file itself.
    writer = sqlite3.connect(state, isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE overrides SET window = 'Early April 2027'")
        writer.execute("UPDATE settings SET value = 'Preorders' WHERE key = 'note_label'")
        writer.execute("UPDATE connection SET shop = 'renamed.myshopify.com'")
        assert Path(f"{state}-wal").stat().st_size > 0
        file_before = state.read_bytes()
        with unwritable(state.parent):
            result = cli([*args, "--db", str(state)])
        assert state.read_bytes() == file_before
    finally:
        writer.close()
    assert result.code == 0, result.output
    doc = json.loads(result.out)
    seen = {
        "status": lambda: doc["connection"]["shop"] == "renamed.myshopify.com",
        "preorders": lambda: doc[0]["window"] == "Early April 2027",
        "config": lambda: doc["note_label"] == "Preorders",
    }[args[0]]
    assert seen(), doc


@pytest.mark.parametrize("args", [["preorders", "list"], ["config", "list"]], ids=_ids)
def test_a_missing_state_file_is_not_created_by_a_list(args, cli, tmp_path, checks):
    typo = tmp_path / "no-such-dir" / "typo.db"

    result = cli([*args, "--db", str(typo)])

    checks.clean_error(result, 2, "not connected yet", str(typo), "loopsync connect")
    assert list(tmp_path.iterdir()) == []


def test_status_of_a_missing_state_file_in_a_missing_directory_creates_nothing(cli, tmp_path):
    result = cli(["status", "--json", "--db", str(tmp_path / "no-such-dir" / "typo.db")])
    assert result.code == 0 and json.loads(result.out)["connection"] is None, result.output
    assert list(tmp_path.iterdir()) == []


def test_writing_commands_still_refuse_a_read_only_state_file(cli, state, checks):
    with unwritable(state):
        result = cli(["config", "set", "note_label", "Other", "--db", str(state)])
    checks.clean_error(result, 2, "read-only; loopsync needs to write to it")


@pytest.mark.parametrize("args", [["history", "--json"], ["explain", "EXC-1086-1", "--json"]], ids=_ids)
@pytest.mark.parametrize("what", ["file", "directory"])
def test_history_and_explain_work_on_a_state_file_they_cannot_write(args, what, cli, state):
    assert cli(["scan", "--db", str(state)]).code == 0
    before = _listing(state.parent)

    with unwritable(state if what == "file" else state.parent):
        result = cli([*args, "--db", str(state)])

    assert result.code == 0, result.output
    doc = json.loads(result.out)
    entries = doc["entries"] if args[0] == "history" else doc["ledger"]["history"]
    assert "EXC-1086-1" in {e["order"] for e in entries}
    assert _listing(state.parent) == before, "a read-only command created or changed a file"
