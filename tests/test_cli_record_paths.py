"""`--record` never writes over a file: not the state file (by any name), not the place its
snapshot goes, not an earlier recording. The cassette it writes is owner-only, like the snapshot."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def _assert_state_intact(cli, db: Path) -> None:
    status = cli(["status", "--json", "--db", str(db)])
    assert status.code == 0 and '"shop": "sandbox-store.myshopify.com"' in status.out, status.output


# How each case names the state file (or a file it cannot do without) as the recording.
DESTRUCTIVE = {
    "the state file": lambda db: db,
    "the state file by a relative-looking path": lambda db: db.parent / "." / db.name,
    "a symlink to the state file": "symlink",
    "the state file's -wal": lambda db: Path(f"{db}-wal"),
    "the state file's lock": lambda db: Path(f"{db}.lock"),
}


@pytest.mark.parametrize("case", DESTRUCTIVE)
def test_recording_over_the_state_file_is_refused(case, cli, connected, probe, checks):
    target = DESTRUCTIVE[case]
    if target == "symlink":
        record = connected.parent / "incident.yaml"
        record.symlink_to(connected)
    else:
        record = target(connected)
    mark = probe.mark()

    result = cli(["scan", "--db", str(connected), "--record", str(record)])

    checks.clean_error(result, 2, "would write over the state file", "record to another name")
    assert probe.entries(mark) == [], "the scan ran although its recording was refused"
    _assert_state_intact(cli, connected)


def test_a_snapshot_that_would_land_on_the_state_file_is_refused(cli, sandbox, env_for, tmp_path, checks):
    # `--record shop.yaml` puts the snapshot at shop.state.db: here, the state file itself.
    db = tmp_path / "shop.state.db"
    assert cli(["connect", "--db", str(db)], env=env_for(sandbox)).code == 0
    before = db.read_bytes()

    result = cli(["scan", "--db", str(db), "--record", str(tmp_path / "shop.yaml")])

    checks.clean_error(result, 2, "would write over the state file", "shop.state.db")
    assert db.read_bytes() == before
    assert not (tmp_path / "shop.yaml").exists()


@pytest.mark.parametrize("command", [["connect"], ["release", "EXC-1086-1", "--yes"]])
def test_every_recording_command_protects_the_state_file(command, cli, connected, env_for, sandbox, checks):
    result = cli([*command, "--db", str(connected), "--record", str(connected)], env=env_for(sandbox))
    checks.clean_error(result, 2, "would write over the state file")
    _assert_state_intact(cli, connected)


@pytest.mark.parametrize("existing", ["incident.yaml", "incident.state.db"])
def test_an_existing_recording_or_snapshot_is_not_replaced(existing, cli, connected, probe, checks):
    kept = connected.parent / existing
    kept.write_text("an earlier recording someone still needs\n")
    before = _files(connected.parent)
    mark = probe.mark()

    result = cli(["scan", "--db", str(connected), "--record", str(connected.parent / "incident.yaml")])

    checks.clean_error(result, 2, f"{kept} already exists", "move it away or record to another name")
    assert probe.entries(mark) == []
    after = _files(connected.parent)
    assert after[existing] == before[existing]
    assert set(after) == set(before)


def test_the_cassette_is_owner_only(cli, connected, tmp_path):
    previous = os.umask(0o022)  # the usual umask, under which a plain open() makes 0644 files
    try:
        result = cli(["scan", "--db", str(connected), "--record", str(tmp_path / "incident.yaml")])
    finally:
        os.umask(previous)
    assert result.code == 0, result.output
    for name in ("incident.yaml", "incident.state.db"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert "@" in (tmp_path / "incident.yaml").read_text(encoding="utf-8"), "the demo's returns carry e-mail addresses"
