"""`loopsync connect` and `loopsync disconnect` end to end, over real HTTP against the demo sandbox."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta

import pytest

from loopsync.sandbox import scenarios
from loopsync.sandbox.builders import add_app
from loopsync.store import Store


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


LOOP_REJECTED = "Loop rejected this API key — check it has the Returns permission"


def _status(cli, db) -> dict:
    result = cli(["status", "--db", str(db), "--json"])
    assert result.code == 0, result.output
    return json.loads(result.out)


def _client_credentials_env(sb, env_for) -> dict[str, str]:
    env = env_for(sb)
    del env["LOOPSYNC_SHOPIFY_TOKEN"]
    env["LOOPSYNC_SHOPIFY_CLIENT_ID"] = sb.credentials["client_id"]
    env["LOOPSYNC_SHOPIFY_CLIENT_SECRET"] = sb.credentials["client_secret"]
    return env


# -- connect ------------------------------------------------------------------


def test_connect_with_a_static_token_stores_the_connection_in_a_private_file(env_for, cli, sandbox, db, checks):
    result = cli(["connect", "--db", str(db)], env=env_for(sandbox))

    assert result.code == 0, result.output
    checks.no_secrets(result)
    assert "Connected to Sandbox Store" in result.err
    assert "sandbox-store.myshopify.com" in result.out
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    # SQLite's side files (WAL, shared memory) and the scan lock are as private as the state file.
    for path in db.parent.iterdir():
        if path.name.startswith(db.name):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path.name

    # Later commands need no secret in the environment (the fixture removed every LOOPSYNC_*).
    status = _status(cli, db)
    conn = status["connection"]
    assert conn["shop"] == "sandbox-store.myshopify.com"
    assert conn["shopify_auth"] == "token"
    assert conn["loop_connected"] is True
    assert conn["loop_fingerprint"] and conn["shopify_fingerprint"]
    assert "loop_sandbox_demo_key" not in json.dumps(status)
    scan = cli(["scan", "--db", str(db), "--json"])
    assert scan.code == 0, scan.output
    assert json.loads(scan.out)["holds_placed"] == 4


def test_connect_json_prints_one_document(env_for, cli, sandbox, db):
    result = cli(["connect", "--db", str(db), "--json"], env=env_for(sandbox))

    assert result.code == 0, result.output
    doc = json.loads(result.out)
    assert doc["connection"]["shop"] == "sandbox-store.myshopify.com"
    assert doc["connection"]["loop_connected"] is True


def test_connect_reads_the_loop_key_from_stdin(env_for, cli, sandbox, db, checks):
    env = env_for(sandbox)
    key = env.pop("LOOPSYNC_LOOP_API_KEY")

    result = cli(["connect", "--db", str(db), "--loop-key-stdin"], env=env, stdin=key + "\n")

    assert result.code == 0, result.output
    checks.no_secrets(result)
    assert _status(cli, db)["connection"]["loop_connected"] is True


def test_connect_without_a_loop_key_and_no_terminal_is_a_usage_error(env_for, cli, sandbox, db, checks):
    env = env_for(sandbox)
    del env["LOOPSYNC_LOOP_API_KEY"]

    result = cli(["connect", "--db", str(db)], env=env)

    checks.clean_error(result, 2, "LOOPSYNC_LOOP_API_KEY")
    assert _status(cli, db)["connection"] is None


def test_secrets_are_never_accepted_as_flag_values(env_for, cli, sandbox, db, checks):
    result = cli(["connect", "--db", str(db), "--loop-key", "loop_sandbox_demo_key"], env=env_for(sandbox))

    assert result.code == 2
    assert "Traceback" not in result.output
    assert _status(cli, db)["connection"] is None


@pytest.mark.parametrize("key", ["loop_wrong_key", "loop_sandbox_no_scope_key"])
def test_connect_with_a_key_loop_rejects_stores_nothing(env_for, cli, sandbox, db, checks, key):
    result = cli(["connect", "--db", str(db)], env=env_for(sandbox, LOOPSYNC_LOOP_API_KEY=key))

    checks.clean_error(result, 4, LOOP_REJECTED)
    checks.no_secrets(result, key)
    assert _status(cli, db)["connection"] is None
    no_scan = cli(["scan", "--db", str(db)])
    checks.clean_error(no_scan, 2, "loopsync connect")


def test_a_rejected_rotation_keeps_the_previous_connection(env_for, cli, connected, sandbox, checks):
    before = _status(cli, connected)["connection"]

    result = cli(["connect", "--db", str(connected)], env=env_for(sandbox, LOOPSYNC_LOOP_API_KEY="loop_bad"))

    checks.clean_error(result, 4, LOOP_REJECTED)
    assert _status(cli, connected)["connection"]["loop_fingerprint"] == before["loop_fingerprint"]


def test_connect_again_rotates_the_loop_key(env_for, cli, connected, sandbox, checks):
    before = _status(cli, connected)["connection"]["loop_fingerprint"]
    with sandbox.world.lock:
        sandbox.world.loop_api_keys["loop_sandbox_rotated_key"] = {"returns"}

    result = cli(["connect", "--db", str(connected)],
                 env=env_for(sandbox, LOOPSYNC_LOOP_API_KEY="loop_sandbox_rotated_key"))

    assert result.code == 0, result.output
    checks.no_secrets(result, "loop_sandbox_rotated_key")
    after = _status(cli, connected)["connection"]["loop_fingerprint"]
    assert after != before


def test_connect_names_a_missing_shopify_scope_and_stores_nothing(env_for, cli, sandbox, db, checks):
    add_app(sandbox.world, "Narrow app", ["read_orders", "read_products", "write_orders"],
            static_token="shpat_sandbox_narrow_token")

    result = cli(["connect", "--db", str(db)],
                 env=env_for(sandbox, LOOPSYNC_SHOPIFY_TOKEN="shpat_sandbox_narrow_token"))

    checks.clean_error(result, 4, "hold fulfillment orders", "write_merchant_managed_fulfillment_orders")
    checks.no_secrets(result, "shpat_sandbox_narrow_token")
    assert "tag orders" not in result.err
    assert _status(cli, db)["connection"] is None


def test_client_credentials_connect_scan_and_renew_the_token(env_for, cli, sandbox, db, probe, checks):
    result = cli(["connect", "--db", str(db)], env=_client_credentials_env(sandbox, env_for))

    assert result.code == 0, result.output
    checks.no_secrets(result, *probe.issued_tokens())
    assert _status(cli, db)["connection"]["shopify_auth"] == "client_credentials"
    [first_token] = probe.issued_tokens()

    # Cron's scan has no secret in its environment: the cached token serves.
    mark = probe.mark()
    scan = cli(["scan", "--db", str(db), "--json"])
    assert scan.code == 0, scan.output
    assert json.loads(scan.out)["holds_placed"] == 4
    assert [e for e in probe.entries(mark) if e.api == "oauth"] == []

    # A day later the 24-hour token has lapsed: the next scan gets a new one and keeps it.
    probe.world.advance(timedelta(hours=25))
    scenarios.add_exchange(probe.world, {"original": "#1002", "name": "EXC-1002-1", "created": "-5m",
                                          "lines": [{"sku": "JKT-L-PRE"}]})
    mark = probe.mark()
    renewed = cli(["scan", "--db", str(db), "--json"])

    assert renewed.code == 0, renewed.output
    checks.no_secrets(renewed, *probe.issued_tokens())
    assert json.loads(renewed.out)["holds_placed"] == 1
    assert len(probe.our_holds("EXC-1002-1")) == 1
    assert len([e for e in probe.entries(mark) if e.api == "oauth"]) == 1
    tokens = probe.issued_tokens()
    assert len(tokens) == 2 and tokens[0] == first_token
    store = Store.open(db)
    try:
        assert store.config.connection().access_token == tokens[1]
    finally:
        store.close()

    # Persisted: the scan after that reuses it rather than asking again.
    mark = probe.mark()
    assert cli(["scan", "--db", str(db)]).code == 0
    assert [e for e in probe.entries(mark) if e.api == "oauth"] == []


# -- disconnect -----------------------------------------------------------------


def test_disconnect_needs_confirmation(cli, connected, probe, checks):
    result = cli(["disconnect", "--db", str(connected)])

    checks.clean_error(result, 2, "--yes")
    assert _status(cli, connected)["connection"]["loop_connected"] is True


def test_disconnect_without_a_connection_is_a_usage_error(cli, db, checks):
    checks.clean_error(cli(["disconnect", "--yes", "--db", str(db)]), 2, "loopsync connect")


def test_after_disconnect_no_new_holds_but_existing_ones_are_still_released(cli, connected, sandbox, probe, checks):
    assert cli(["scan", "--db", str(connected)]).code == 0

    result = cli(["disconnect", "--yes", "--db", str(connected)])
    assert result.code == 0, result.output
    checks.no_secrets(result)
    status = _status(cli, connected)
    assert status["connection"]["loop_connected"] is False
    assert status["connection"]["loop_fingerprint"] is None
    assert len(status["held"]) == 4
    again = cli(["disconnect", "--yes", "--db", str(connected)])
    assert again.code == 0 and "already disconnected" in again.err

    # A new exchange into a pre-order variant, with the Loop key still in the environment.
    scenarios.add_exchange(sandbox.world, {"original": "#1002", "name": "EXC-1002-1", "created": "-5m",
                                           "lines": [{"sku": "JKT-L-PRE"}]})
    env = {"LOOPSYNC_LOOP_API_KEY": sandbox.credentials["loop_api_key"]}
    mark = probe.mark()
    scan = cli(["scan", "--db", str(connected), "--json"], env=env)

    assert scan.code == 0, scan.output
    checks.no_secrets(scan)
    assert probe.holds("EXC-1002-1") == []
    assert "pre-order" not in probe.order("EXC-1002-1").tags
    assert probe.notes("#1002") == []
    assert probe.mutations(mark) == []
    assert probe.loop_requests(mark) == []
    decisions = {o["order"]: o["decision"] for o in json.loads(scan.out)["orders"]}
    assert decisions["EXC-1002-1"] == "disconnected_skip"

    # The jacket pre-order ships: loopsync still lifts its own holds on it, and only those.
    upsell = [h.id for h in probe.holds("EXC-1092-1") if not h.handle.startswith("loopsync")]
    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    mark = probe.mark()
    shipped = cli(["scan", "--db", str(connected)], env=env)

    assert shipped.code == 0, shipped.output
    assert sorted(probe.mutations(mark)) == ["fulfillmentOrderReleaseHold"] * 2
    assert probe.our_holds("EXC-1086-1") == [] and probe.our_holds("EXC-1092-1") == []
    assert [h.id for h in probe.holds("EXC-1092-1")] == upsell
    assert probe.loop_requests(mark) == []

    # Manual release still works while disconnected.
    released = cli(["release", "EXC-1091-1", "--yes", "--db", str(connected)], env=env)
    assert released.code == 0, released.output
    assert probe.our_holds("EXC-1091-1") == []
    assert [h["order"] for h in _status(cli, connected)["held"]] == ["#1095"]
