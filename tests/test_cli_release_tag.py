"""`loopsync release` writes its decision onto the order in Shopify (the tag `loopsync-release`),
and a scan never holds an order that carries it: a new or lost state file does not undo support."""

from __future__ import annotations

import json

import pytest

from loopsync.store import Store
from support.cli import held_orders as _held
from support.cli import scan as _scan


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


def test_a_released_order_is_not_held_again_from_a_new_state_file(cli, connected, probe, env_for, sandbox, tmp_path):
    assert _scan(cli, connected).code == 0
    result = cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)])
    assert result.code == 0, result.output
    assert "loopsync-release" in probe.order("EXC-1086-1").tags

    # The state file is lost: a new one, connected to the same store, scans from scratch.
    fresh = tmp_path / "new-state.db"
    assert cli(["connect", "--db", str(fresh)], env=env_for(sandbox)).code == 0
    mark = probe.mark()
    again = _scan(cli, fresh, "--json")

    assert again.code == 0, again.output
    assert probe.our_holds("EXC-1086-1") == []
    by_name = {o["order"]: o for o in json.loads(again.out)["orders"]}
    assert by_name["EXC-1086-1"]["decision"] == "manual_release_respected"
    assert "loopsync-release" in by_name["EXC-1086-1"]["reason"]
    # Nothing was held again; the other pre-order exchanges keep the holds the first file placed.
    assert "fulfillmentOrderHold" not in probe.mutations(mark)
    assert all(len(probe.our_holds(name)) == 1 for name in ("EXC-1091-1", "EXC-1092-1", "#1095"))
    assert "EXC-1086-1" not in _held(cli, fresh)


def test_release_before_any_hold_tags_the_order_too(cli, connected, probe):
    result = cli(["release", "EXC-1091-1", "--yes", "--db", str(connected)])

    assert result.code == 0, result.output
    assert "had no loopsync hold" in result.err
    assert "loopsync-release" in probe.order("EXC-1091-1").tags
    assert _scan(cli, connected).code == 0
    assert probe.our_holds("EXC-1091-1") == []


def test_the_release_tag_counts_whatever_its_case(cli, connected, probe):
    """Shopify's tags are not case-sensitive: a person typing it in the admin need not match ours."""
    with probe.world.lock:
        order = probe.order("EXC-1086-1")
        order.tags.append("LoopSync-Release")
        probe.world.touch_order(order.id)

    assert _scan(cli, connected).code == 0
    assert probe.our_holds("EXC-1086-1") == []
    assert len(probe.our_holds("EXC-1092-1")) == 1

    # Released by tag, not by hand: the state file holds no mark of its own, the tag is the decision.
    with Store.open(connected) as store:
        assert not store.orders.is_manually_released(order.id)


def test_the_release_tag_is_a_setting(cli, connected, probe, checks):
    listed = cli(["config", "list", "--db", str(connected), "--json"])
    assert listed.code == 0, listed.output
    settings = json.loads(listed.out)
    assert settings["release_tag"] == "loopsync-release" and settings["release_note"] == "on"

    assert cli(["config", "set", "release_tag", "Support Released", "--db", str(connected)]).code == 0
    assert _scan(cli, connected).code == 0
    assert cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)]).code == 0
    tags = probe.order("EXC-1086-1").tags
    assert "Support Released" in tags and "loopsync-release" not in tags


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("release_tag", "pre-order", "release_tag and preorder_tag"),
        ("release_tag", "Loop Exchange", "release_tag and native_exchange_tag"),
        ("release_tag", "a,b", "one tag"),
        ("release_tag", " ", "cannot be empty"),
        ("release_note", "maybe", "on or off"),
        ("preorder_tag", "LOOPSYNC-RELEASE", "release_tag and preorder_tag"),
    ],
)
def test_bad_release_settings_are_refused(cli, connected, checks, key, value, fragment):
    result = cli(["config", "set", key, value, "--db", str(connected)])

    checks.clean_error(result, 2, fragment)
    with Store.open(connected) as store:
        assert store.config.settings()[key] != value
