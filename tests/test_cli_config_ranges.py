"""Durations have a range: `config set lookback/overlap` and `scan --since` refuse what a
scan could not use (exit 2, with the range), and a value an older loopsync stored names its fix."""

from __future__ import annotations

import json

import pytest

from loopsync.store import Store

RANGE = "between 1s and 365d"


@pytest.mark.parametrize("key", ["lookback", "overlap"])
@pytest.mark.parametrize("value", ["100000000d", "366d", "53w", "31536001s", "0d", "0s", "-3d", "9" * 5000 + "d"])
def test_config_set_refuses_a_duration_out_of_range(cli, db, checks, key, value):
    result = cli(["config", "set", "--db", str(db), "--", key, value])  # "--": -3d is no option

    checks.clean_error(result, 2, RANGE)
    assert json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)[key] in ("7d", "10m")


@pytest.mark.parametrize("value", ["365d", "8760h", "52w", "1s"])
def test_config_set_accepts_the_ends_of_the_range(cli, db, value):
    assert cli(["config", "set", "lookback", value, "--db", str(db)]).code == 0
    assert json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)["lookback"] == value


@pytest.mark.parametrize(
    ("since", "fragment"),
    [("100000000d", RANGE), ("0h", RANGE), ("0001-01-01", "within the last 365 days")],
)
def test_scan_since_out_of_range_is_a_usage_error(cli, connected, probe, checks, since, fragment):
    mark = probe.mark()

    result = cli(["scan", "--db", str(connected), "--since", since])

    checks.clean_error(result, 2, fragment)
    assert probe.mutations(mark) == []


def test_a_lookback_stored_out_of_range_by_an_older_version_names_the_fix(cli, connected, probe, checks):
    with Store.open(connected) as store:
        # What an older loopsync accepted without a range check.
        store.config.set_setting("lookback", "100000000d")

    result = cli(["scan", "--db", str(connected)])

    checks.clean_error(result, 2, "loopsync config unset lookback", RANGE)
    assert probe.mutations() == []
    assert cli(["config", "unset", "lookback", "--db", str(connected)]).code == 0
    assert cli(["scan", "--db", str(connected)]).code == 0
