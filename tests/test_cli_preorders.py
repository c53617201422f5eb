"""`loopsync preorders list|add|remove` end to end: local overrides drive holds, notes and releases."""

from __future__ import annotations

import json

import pytest

from loopsync.sandbox.world import gid_number


@pytest.fixture
def cli(secret_safe_cli):
    """Every command these tests run is also checked for leaked credentials."""
    return secret_safe_cli


def _preorders(cli, db, *args):
    return cli(["preorders", *args, "--db", str(db)])


def test_list_add_remove(cli, db, checks):
    added = _preorders(cli, db, "add", "42", "--window", "  Late March 2027 ")
    assert added.code == 0, added.output
    assert "gid://shopify/ProductVariant/42" in added.err

    listed = _preorders(cli, db, "list")
    assert listed.code == 0
    assert listed.out.strip() == "gid://shopify/ProductVariant/42\tLate March 2027"
    assert json.loads(_preorders(cli, db, "list", "--json").out) == [
        {"variant_id": "gid://shopify/ProductVariant/42", "window": "Late March 2027"}
    ]

    removed = _preorders(cli, db, "remove", "gid://shopify/ProductVariant/42")
    assert removed.code == 0, removed.output
    assert json.loads(_preorders(cli, db, "list", "--json").out) == []
    empty = _preorders(cli, db, "list")
    assert empty.code == 0 and empty.out == "" and "No local pre-order overrides" in empty.err


def test_add_refuses_an_empty_window_or_a_bad_variant(cli, db, checks):
    checks.clean_error(_preorders(cli, db, "add", "42", "--window", "   "), 2, "window")
    checks.clean_error(_preorders(cli, db, "add", "not-a-variant", "--window", "Spring"), 2)
    assert not db.exists(), "a refused add must not leave a state file behind"


def test_an_override_holds_an_in_stock_exchange_and_removing_it_releases(cli, connected, probe):
    tee = probe.variant("TEE-M")  # EXC-1090-1's item: in stock as far as Shopify knows
    added = _preorders(cli, connected, "add", str(gid_number(tee)), "--window", "Early April 2027")
    assert added.code == 0, added.output

    result = cli(["scan", "--db", str(connected), "--json"])

    assert result.code == 0, result.output
    assert json.loads(result.out)["holds_placed"] == 5
    [hold] = probe.our_holds("EXC-1090-1")
    assert "Early April 2027" in (hold.reason_notes or "")
    assert "pre-order" in probe.order("EXC-1090-1").tags
    assert probe.notes("#1090") == [
        "[loopsync] This exchange item is on pre-order, estimated shipping: Early April 2027."
    ]

    assert _preorders(cli, connected, "remove", tee).code == 0
    mark = probe.mark()
    after = cli(["scan", "--db", str(connected), "--json"])

    assert after.code == 0, after.output
    assert json.loads(after.out)["holds_released"] == 1
    assert probe.mutations(mark) == ["fulfillmentOrderReleaseHold"]
    assert probe.our_holds("EXC-1090-1") == []
    # The selling-plan pre-orders are unaffected.
    assert len(probe.our_holds("EXC-1086-1")) == 1


def test_an_override_window_wins_over_the_selling_plan_date(cli, connected, probe):
    jacket = probe.variant("JKT-L-PRE")
    assert _preorders(cli, connected, "add", jacket, "--window", "Summer 2027").code == 0

    assert cli(["scan", "--db", str(connected)]).code == 0

    note = "[loopsync] This exchange item is on pre-order, estimated shipping: Summer 2027."
    assert probe.notes("#1086") == [note]
    assert probe.notes("#1092") == [note]


def test_window_text_is_printed_as_written(cli, db):
    window = "Spring [TBC] [bold]2027[/bold]"
    added = _preorders(cli, db, "add", "7", "--window", window)
    assert added.code == 0, added.output
    assert window in added.err

    assert _preorders(cli, db, "list").out == f"gid://shopify/ProductVariant/7\t{window}\n"
