"""Bad input through the CLI: one clear sentence, the README's exit code, no traceback, nothing changed."""

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


def test_an_unknown_order_on_release(cli, connected, probe, checks):
    assert cli(["scan", "--db", str(connected)]).code == 0
    holds = sorted(h.id for h in probe.world.holds())
    mark = probe.mark()

    result = cli(["release", "EXC-9999-1", "--yes", "--db", str(connected)])

    checks.clean_error(result, USAGE, "EXC-9999-1")
    assert probe.mutations(mark) == []
    assert sorted(h.id for h in probe.world.holds()) == holds


@pytest.mark.parametrize("shop", ["not a shop", "https://example.com/store", "exa_mple.myshopify.com"])
def test_a_malformed_shop_domain(cli, sandbox, env_for, db, probe, checks, shop):
    mark = probe.mark()

    result = cli(["connect", "--db", str(db), "--shop", shop], env=env_for(sandbox))

    checks.clean_error(result, USAGE, "is not a Shopify shop domain")
    checks.no_secrets(result)
    assert probe.entries(mark) == []
    assert not db.exists()


def test_a_malformed_shop_domain_from_the_environment(cli, sandbox, env_for, db, probe, checks):
    result = cli(["connect", "--db", str(db)], env=env_for(sandbox, LOOPSYNC_SHOP="shop name with spaces"))

    checks.clean_error(result, USAGE, "is not a Shopify shop domain")
    assert probe.entries() == []
    assert not db.exists()


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


@pytest.mark.parametrize(
    "args",
    [
        ["scan"],
        ["status"],
        ["status", "--json"],
        ["release", "EXC-1086-1", "--yes"],
        ["disconnect", "--yes"],
        ["preorders", "list"],
        ["preorders", "add", "1", "--window", "Spring"],
    ],
)
def test_a_state_file_that_is_not_sqlite(cli, tmp_path, checks, args):
    db = tmp_path / "state.db"
    garbage = b"this is not an SQLite database, just some text somebody saved here\n" * 20
    db.write_bytes(garbage)

    result = cli([*args, "--db", str(db)])

    checks.clean_error(result, USAGE, "not a loopsync state file")
    assert db.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]


def test_connect_to_a_state_file_that_is_not_sqlite(cli, sandbox, env_for, tmp_path, probe, checks):
    db = tmp_path / "state.db"
    db.write_bytes(b"garbage" * 100)

    result = cli(["connect", "--db", str(db)], env=env_for(sandbox))

    checks.clean_error(result, USAGE, "not a loopsync state file")
    checks.no_secrets(result)
    assert db.read_bytes() == b"garbage" * 100
    assert probe.entries() == []


def test_a_directory_as_the_state_file(cli, tmp_path, checks):
    checks.clean_error(cli(["status", "--db", str(tmp_path)]), USAGE, "not a loopsync state file")


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


def test_a_loop_key_revoked_after_connect_stops_the_scan_with_exit_4(cli, connected, probe, checks):
    with probe.world.lock:
        del probe.world.loop_api_keys["loop_sandbox_demo_key"]

    result = cli(["scan", "--db", str(connected)])

    checks.clean_error(result, 4, "Loop rejected this API key")
    status = json.loads(cli(["status", "--db", str(connected), "--json"]).out)
    assert status["last_scan"]["outcome"] == "failed" and status["cursor"] is None

    # Once the key works again, the next scan finishes the job without doubling anything.
    with probe.world.lock:
        probe.world.loop_api_keys["loop_sandbox_demo_key"] = {"returns"}
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert sorted(len(probe.our_holds(n)) for n in ("EXC-1086-1", "EXC-1091-1", "EXC-1092-1", "#1095")) == [1] * 4
    for original in ("#1086", "#1091", "#1092", "#1095"):
        assert len(probe.notes(original)) == 1


@pytest.mark.parametrize("command", [["scan"], ["release", "EXC-1086-1", "--yes"]])
def test_a_revoked_shopify_token_is_exit_4(cli, connected, probe, checks, command):
    with probe.world.lock:
        del probe.world.tokens["shpat_sandbox_demo_token"]

    checks.clean_error(cli([*command, "--db", str(connected)]), 4, "Shopify rejected the access token")
