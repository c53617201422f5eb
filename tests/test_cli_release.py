"""Releasing holds end to end: automatically when the pre-order ships, and by hand with `loopsync release`."""

from __future__ import annotations

import json

import pytest

from loopsync.sandbox.world import gid_number
from support.cli import held_orders as _held
from support.cli import scan as _scan


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


def test_holds_are_released_automatically_when_the_preorder_ships(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    upsell = [(h.id, h.handle, h.reason_notes) for h in probe.holds("EXC-1092-1") if not h.handle.startswith("loopsync")]
    boots_holds = sorted(h.id for name in ("EXC-1091-1", "#1095") for h in probe.our_holds(name))
    assert len(upsell) == 1 and len(boots_holds) == 2

    probe.world.take_off_preorder(probe.variant("JKT-L-PRE"))
    mark = probe.mark()
    result = _scan(cli, connected, "--json")

    assert result.code == 0, result.output
    doc = json.loads(result.out)
    # The release notes are tests/test_cli_release_note.py's subject; here they are only counted.
    assert doc["holds_released"] == 2 and doc["holds_placed"] == 0 and doc["notes_posted"] == 2
    # Only our two jacket holds were lifted: one release call each, nothing else sent to Shopify.
    assert probe.mutations(mark) == ["fulfillmentOrderReleaseHold"] * 2
    assert len(probe.loop_posts(mark)) == 2
    assert probe.our_holds("EXC-1086-1") == [] and probe.our_holds("EXC-1092-1") == []
    [fo_1086] = probe.fulfillment_orders("EXC-1086-1")
    assert fo_1086.status == "OPEN"
    # Upsell Guard's hold is still there, exactly as it was, so that FO still cannot ship.
    [fo_1092] = probe.fulfillment_orders("EXC-1092-1")
    assert [(h.id, h.handle, h.reason_notes) for h in fo_1092.holds] == upsell
    assert fo_1092.status == "ON_HOLD"
    # The boots are still on pre-order and stay held.
    assert sorted(h.id for name in ("EXC-1091-1", "#1095") for h in probe.our_holds(name)) == boots_holds
    assert _held(cli, connected) == ["#1095", "EXC-1091-1"]

    # And it stays that way: the next scan neither re-holds nor releases anything.
    mark = probe.mark()
    assert _scan(cli, connected).code == 0
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []


def test_a_manual_release_is_not_undone_by_the_next_scan(cli, connected, probe, checks):
    assert _scan(cli, connected).code == 0
    mark = probe.mark()

    result = cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)])

    assert result.code == 0, result.output
    checks.no_secrets(result)
    assert "Released 1 loopsync hold(s) on EXC-1086-1" in result.err
    # The release tag first (tests/test_cli_release_tag.py), then the release itself.
    assert probe.mutations(mark) == ["tagsAdd", "fulfillmentOrderReleaseHold"]
    assert probe.our_holds("EXC-1086-1") == []
    assert "EXC-1086-1" not in _held(cli, connected)

    mark = probe.mark()
    again = _scan(cli, connected, "--since", "3d")
    assert again.code == 0, again.output
    assert probe.mutations(mark) == []
    assert probe.our_holds("EXC-1086-1") == []
    assert probe.notes("#1086") == ["[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027.",
                                    "[loopsync] The pre-order item is ready: the hold was released."]


def test_releasing_the_whole_order_hold_leaves_the_other_apps_hold(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    theirs = [h.id for h in probe.holds("EXC-1092-1") if not h.handle.startswith("loopsync")]

    result = cli(["release", "EXC-1092-1", "--yes", "--db", str(connected), "--json"])

    assert result.code == 0, result.output
    doc = json.loads(result.out)
    assert doc["order"] == "EXC-1092-1" and doc["decision"] == "released_manually"
    assert [a["kind"] for a in doc["actions"]] == ["tag", "release", "note"]
    assert [h.id for h in probe.holds("EXC-1092-1")] == theirs
    assert probe.fulfillment_orders("EXC-1092-1")[0].status == "ON_HOLD"


def test_release_takes_a_numeric_id_or_a_gid(cli, connected, probe):
    assert _scan(cli, connected).code == 0
    split_id = probe.order("EXC-1091-1").id
    native_id = probe.order("#1095").id

    by_number = cli(["release", str(gid_number(split_id)), "--yes", "--db", str(connected)])
    by_gid = cli(["release", native_id, "--yes", "--db", str(connected)])

    assert by_number.code == 0, by_number.output
    assert by_gid.code == 0, by_gid.output
    assert probe.our_holds("EXC-1091-1") == [] and probe.our_holds("#1095") == []
    # The split-off T-shirt FO was never held and is untouched.
    assert all(fo.status == "OPEN" for fo in probe.fulfillment_orders("EXC-1091-1"))
    assert _held(cli, connected) == ["EXC-1086-1", "EXC-1092-1"]


def test_release_before_any_hold_means_the_order_is_never_held(cli, connected, probe):
    result = cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)])

    assert result.code == 0, result.output
    assert "had no loopsync hold" in result.err
    mark = probe.mark()
    assert _scan(cli, connected).code == 0
    assert probe.our_holds("EXC-1086-1") == []
    assert "fulfillmentOrderHold" in probe.mutations(mark)  # the others are still held
    assert "EXC-1086-1" not in _held(cli, connected)


def test_release_needs_confirmation_and_changes_nothing_without_it(cli, connected, probe, checks):
    assert _scan(cli, connected).code == 0
    mark = probe.mark()

    result = cli(["release", "EXC-1086-1", "--db", str(connected)])

    checks.clean_error(result, 2, "--yes")
    assert probe.entries(mark) == []
    assert len(probe.our_holds("EXC-1086-1")) == 1
