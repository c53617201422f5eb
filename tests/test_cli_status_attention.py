"""`loopsync status` for monitoring: it exits 1, and says why on stderr, exactly when something needs
a person: a hold the guard gave up on, a last scan that failed, and pre-order exchanges left unheld
while Loop is disconnected. A healthy store exits 0."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from loopsync.exit_codes import ExitCode
from loopsync.sandbox import activity

GIVE_UP = "another app or automation keeps releasing this hold; check Shopify Flow"


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


def status(cli, db):
    result = cli(["status", "--db", str(db), "--json"])
    return result, json.loads(result.out)


def test_a_healthy_store_exits_0_with_nothing_to_attend_to(cli, connected):
    assert cli(["scan", "--db", str(connected)]).code == 0

    result, doc = status(cli, connected)

    assert result.code == 0, result.output
    assert doc["attention"] == [] and doc["gave_up"] == []
    assert doc["last_scan"]["outcome"] == "ok" and doc["last_scan"]["error"] is None


def test_an_order_the_hold_guard_gave_up_on_exits_1_until_support_settles_it(cli, connected, probe):
    assert cli(["scan", "--db", str(connected)]).code == 0
    for _ in range(4):
        activity.release_every_hold(probe.world, "EXC-1086-1")
        probe.world.advance(timedelta(minutes=30))
        cli(["scan", "--db", str(connected)])

    result, doc = status(cli, connected)

    assert result.code == ExitCode.PENDING, result.output
    [given] = doc["gave_up"]
    assert (given["order"], given["what"], given["reason"]) == ("EXC-1086-1", "hold", GIVE_UP)
    assert given["at"]
    assert doc["attention"] == [f"EXC-1086-1: {GIVE_UP}"]
    text = cli(["status", "--db", str(connected)], env={"COLUMNS": "200"})
    assert text.code == ExitCode.PENDING
    assert "Given up on" in text.out and f"needs attention: EXC-1086-1: {GIVE_UP}" in text.err

    assert cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)]).code == 0
    result, doc = status(cli, connected)
    assert result.code == 0, result.output
    assert doc["gave_up"] == [] and doc["attention"] == []


def test_a_failed_last_scan_exits_1(cli, connected, sandbox):
    with sandbox.world.lock:
        for token in [t for t, issued in sandbox.world.tokens.items() if issued.expires_at is None]:
            del sandbox.world.tokens[token]
    assert cli(["scan", "--db", str(connected)]).code == ExitCode.CREDENTIALS

    result, doc = status(cli, connected)

    assert result.code == ExitCode.PENDING, result.output
    assert doc["last_scan"]["outcome"] == "failed" and doc["last_scan"]["error"]
    [line] = doc["attention"]
    assert line.startswith(f"the last scan (#{doc['last_scan']['id']}) failed")


def test_exchanges_left_unheld_while_disconnected_exit_1_and_not_once_loop_is_back(cli, connected, sandbox, env_for):
    assert cli(["disconnect", "--yes", "--db", str(connected)]).code == 0
    assert cli(["scan", "--db", str(connected)]).code == 0

    result, doc = status(cli, connected)

    assert result.code == ExitCode.PENDING, result.output
    assert doc["attention"] == ["4 pre-order exchanges unheld while Loop is disconnected"]

    # Reconnected: the next scan holds them, so nothing is left for a person.
    assert cli(["connect", "--db", str(connected)], env=env_for(sandbox)).code == 0
    assert status(cli, connected)[1]["attention"] == []
