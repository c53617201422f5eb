"""`loopsync status` end to end: connection, last scan, held orders with windows, pending orders."""

from __future__ import annotations

import json

import pytest

from loopsync.sandbox import scenarios


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


WIDE = {"COLUMNS": "200"}


def _status(cli, db, *args, env=None):
    return cli(["status", "--db", str(db), *args], env=env)


def test_status_before_connecting(cli, db):
    result = _status(cli, db, "--json")

    assert result.code == 0, result.output
    doc = json.loads(result.out)
    assert doc["connection"] is None and doc["last_scan"] is None
    assert doc["held"] == [] and doc["pending"] == []


def test_status_json_after_a_scan(cli, connected, sandbox, checks):
    assert cli(["scan", "--db", str(connected)]).code == 0

    result = _status(cli, connected, "--json")

    assert result.code == 0, result.output
    checks.no_secrets(result)
    doc = json.loads(result.out)  # exactly one document on stdout
    conn = doc["connection"]
    assert conn["shop"] == "sandbox-store.myshopify.com"
    assert conn["loop_connected"] is True
    # Keys only as fingerprints.
    assert conn["loop_fingerprint"] and sandbox.credentials["loop_api_key"] not in json.dumps(doc)
    assert doc["last_scan"]["outcome"] == "ok"
    assert doc["last_scan"]["counters"]["holds"] == 4
    assert doc["cursor"] is not None
    held = {h["order"]: h["window"] for h in doc["held"]}
    assert held == {
        "EXC-1086-1": "15 March 2027",
        "EXC-1091-1": "Late January 2027",
        "EXC-1092-1": "15 March 2027",
        "#1095": "Late January 2027",
    }
    assert all(h["hold_id"].startswith("gid://shopify/FulfillmentHold/") for h in doc["held"])
    assert doc["pending"] == []


def test_status_for_people_shows_the_held_orders_and_pending_ones(cli, connected, probe, checks):
    scenarios.add_exchange(probe.world, {"original": "#1002", "name": "EXC-1002-1", "created": "-5m",
                                         "lines": [{"sku": "JKT-L-PRE"}], "return": None})
    assert cli(["scan", "--db", str(connected)]).code == 1

    result = _status(cli, connected, env=WIDE)

    assert result.code == 0, result.output
    checks.no_secrets(result)
    out = result.out
    assert "sandbox-store.myshopify.com" in out
    assert "Loop Returns: connected" in out
    assert "pending" in out
    for name in ("EXC-1086-1", "EXC-1091-1", "EXC-1092-1", "#1095"):
        assert name in out
    assert "15 March 2027" in out and "Late January 2027" in out
    assert "EXC-1002-1" in out and "Loop return not found yet" in out


def test_status_after_disconnect(cli, connected, checks):
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0

    result = _status(cli, connected)

    assert result.code == 0
    assert "disconnected" in result.out
    checks.no_secrets(result)


def test_windows_are_shown_as_written(cli, connected, probe):
    window = "Spring [TBC] [bold]2027[/bold]"
    assert cli(["preorders", "add", probe.variant("TEE-M"), "--window", window, "--db", str(connected)]).code == 0
    assert cli(["scan", "--db", str(connected)]).code == 0

    result = _status(cli, connected, env=WIDE)

    assert result.code == 0, result.output
    assert window in result.out
