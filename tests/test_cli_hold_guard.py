"""Holds that stay held in a live store: a shipped exchange is left alone, a hold another app
wipes is put back (up to a limit), and support can release from the Shopify admin with a tag."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from loopsync.sandbox import activity
from loopsync.sandbox.builders import add_hold

PREORDER_NOTE = "[loopsync] This exchange item is on pre-order, estimated shipping: 15 March 2027."
GIVE_UP = "another app or automation keeps releasing this hold; check Shopify Flow"


@pytest.fixture
def cli(secret_safe_cli):
    return secret_safe_cli


def scan(cli, db, *args):
    result = cli(["scan", "--db", str(db), "--json", *args])
    return result, (json.loads(result.out) if result.out.strip() else None)


def order_doc(doc, name):
    return next(o for o in doc["orders"] if o["order"] == name)


def status(cli, db):
    return json.loads(cli(["status", "--db", str(db), "--json"]).out)


def mutations_by_order(probe, mark):
    return [m for e in probe.entries(mark) for m in e.mutations]


# --- nothing to ship, nothing to do -------------------------------------------------------


def test_an_exchange_whose_preorder_item_already_shipped_gets_no_hold_tag_or_note(cli, connected, probe):
    [fo] = probe.fulfillment_orders("EXC-1086-1")
    activity.ship(probe.world, fo.id)
    mark = probe.mark()

    result, doc = scan(cli, connected)

    assert result.code == 0, result.output
    held = {o["order"] for o in doc["orders"] if o["decision"] == "held"}
    assert "EXC-1086-1" not in held
    entry = order_doc(doc, "EXC-1086-1")
    assert entry["actions"] == []
    assert "already shipped" in entry["reason"]
    assert "pre-order" not in [t.lower() for t in probe.order("EXC-1086-1").tags]
    assert probe.notes("#1086") == []
    assert probe.our_holds("EXC-1086-1") == []
    # The other exchanges were acted on as usual: 3 holds and 3 tags, none for EXC-1086-1.
    assert sorted(probe.mutations(mark)).count("fulfillmentOrderHold") == 3


def test_a_held_fulfillment_order_that_is_cancelled_is_recorded_and_nothing_is_sent(cli, connected, probe):
    assert scan(cli, connected)[0].code == 0
    assert probe.our_holds("EXC-1086-1")
    activity.cancel(probe.world, "EXC-1086-1")
    mark = probe.mark()

    result, doc = scan(cli, connected)

    assert result.code == 0, result.output
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []
    assert "EXC-1086-1" not in [h["order"] for h in status(cli, connected)["held"]]


# --- the hold guard ---------------------------------------------------------------------------


def test_flow_wiping_a_separate_exchange_hold_gets_exactly_one_hold_back(cli, connected, probe):
    assert scan(cli, connected)[0].code == 0
    [before] = probe.our_holds("EXC-1086-1")
    notes_before = probe.notes("#1086")
    tags_before = list(probe.order("EXC-1086-1").tags)
    activity.release_every_hold(probe.world, "EXC-1086-1")
    assert probe.our_holds("EXC-1086-1") == []
    mark = probe.mark()

    result, doc = scan(cli, connected)

    assert result.code == 0, result.output
    assert probe.mutations(mark) == ["fulfillmentOrderHold"]  # one hold, on that order only
    [again] = probe.our_holds("EXC-1086-1")
    assert (again.handle, again.reason, again.reason_notes) == (before.handle, before.reason, before.reason_notes)
    assert probe.loop_posts(mark) == [] and probe.notes("#1086") == notes_before
    assert probe.order("EXC-1086-1").tags == tags_before
    entry = order_doc(doc, "EXC-1086-1")
    assert any("re-held" in a["detail"] for a in entry["actions"])
    assert doc["holds_reheld"] == 1
    assert [r["order"] for r in status(cli, connected)["reheld"]] == ["EXC-1086-1"]

    mark = probe.mark()
    assert scan(cli, connected)[0].code == 0
    assert probe.mutations(mark) == [] and probe.loop_posts(mark) == []


def test_flow_wiping_a_native_exchange_hold_and_shopifys_own_gets_exactly_one_hold_back(cli, connected, probe):
    native = [fo for fo in probe.fulfillment_orders("#1095") if fo.status != "CLOSED"][0]
    add_hold(probe.world, native.id, None, reason="AWAITING_RETURN_ITEMS")
    assert scan(cli, connected)[0].code == 0
    assert len(probe.our_holds("#1095")) == 1
    activity.release_every_hold(probe.world, "#1095")  # the return closed: Flow's template
    assert probe.holds("#1095") == []
    mark = probe.mark()

    result, _doc = scan(cli, connected)

    assert result.code == 0, result.output
    assert probe.mutations(mark) == ["fulfillmentOrderHold"]
    assert len(probe.our_holds("#1095")) == 1 and len(probe.holds("#1095")) == 1
    assert probe.loop_posts(mark) == []
    mark = probe.mark()
    assert scan(cli, connected)[0].code == 0
    assert probe.mutations(mark) == []


def test_the_fourth_outside_release_within_a_day_is_not_fought(cli, connected, probe):
    assert scan(cli, connected)[0].code == 0
    for _ in range(3):
        activity.release_every_hold(probe.world, "EXC-1086-1")
        probe.world.advance(timedelta(minutes=30))
        assert scan(cli, connected)[0].code == 0
        assert len(probe.our_holds("EXC-1086-1")) == 1
    activity.release_every_hold(probe.world, "EXC-1086-1")
    mark = probe.mark()

    result, doc = scan(cli, connected)

    assert result.code == 1, result.output
    assert probe.mutations(mark) == [] and probe.our_holds("EXC-1086-1") == []
    assert GIVE_UP in order_doc(doc, "EXC-1086-1")["pending"]
    assert GIVE_UP in result.err
    pending = {p["order"]: p["reason"] for p in status(cli, connected)["pending"]}
    assert GIVE_UP in pending["EXC-1086-1"]
    # Support settles it: a manual release ends the fight.
    assert cli(["release", "EXC-1086-1", "--yes", "--db", str(connected)]).code == 0
    assert scan(cli, connected)[0].code == 0


def test_external_release_respect_treats_an_outside_release_as_the_merchants_decision(cli, connected, probe):
    assert cli(["config", "set", "external_release", "respect", "--db", str(connected)]).code == 0
    assert scan(cli, connected)[0].code == 0
    activity.release_every_hold(probe.world, "EXC-1086-1")
    mark = probe.mark()

    result, doc = scan(cli, connected)

    assert result.code == 0, result.output
    assert probe.mutations(mark) == [] and probe.our_holds("EXC-1086-1") == []
    mark = probe.mark()
    assert scan(cli, connected)[0].code == 0
    assert probe.mutations(mark) == []


# --- release from the Shopify admin --------------------------------------------------------------


def test_the_release_tag_added_in_the_admin_releases_that_order_only_and_for_good(cli, connected, probe):
    assert scan(cli, connected)[0].code == 0
    others = {n: [h.id for h in probe.our_holds(n)] for n in ("EXC-1091-1", "EXC-1092-1", "#1095")}
    [hold] = probe.our_holds("EXC-1086-1")
    assert "loopsync-release" in hold.reason_notes and len(hold.reason_notes) <= 255
    activity.staff_add_tags(probe.world, "EXC-1086-1", ["loopsync-release"])
    mark = probe.mark()

    result, doc = scan(cli, connected)

    assert result.code == 0, result.output
    assert probe.mutations(mark) == ["fulfillmentOrderReleaseHold"]
    assert probe.our_holds("EXC-1086-1") == []
    assert {n: [h.id for h in probe.our_holds(n)] for n in others} == others
    assert "loopsync-release" in probe.order("EXC-1086-1").tags  # left as the record
    assert "tag" in order_doc(doc, "EXC-1086-1")["reason"]

    for _ in range(2):  # still on pre-order, never held again
        mark = probe.mark()
        assert scan(cli, connected, "--since", "7d")[0].code == 0
        assert probe.mutations(mark) == [] and probe.our_holds("EXC-1086-1") == []


def test_a_held_fulfillment_order_that_closes_is_recorded_as_closed_not_as_a_release(cli, connected, probe):
    from loopsync.store import Store

    assert scan(cli, connected)[0].code == 0
    activity.cancel(probe.world, "EXC-1086-1")

    assert scan(cli, connected)[0].code == 0

    order_id = probe.order("EXC-1086-1").id
    with Store.open(connected) as store:
        assert [h.status for h in store.holds.holds_for_order(order_id)] == ["closed"]
        assert not store.orders.is_manually_released(order_id)  # not taken as anyone's decision
    assert status(cli, connected)["reheld"] == []


def test_an_exchange_whose_preorder_line_was_removed_by_an_order_edit_is_left_alone(cli, connected, probe):
    order = probe.order("EXC-1086-1")
    [line] = [li for li in order.line_items if li.quantity > 0][:1]
    activity.remove_line(probe.world, "EXC-1086-1", line.sku)
    mark = probe.mark()

    result, doc = scan(cli, connected)

    assert result.code == 0, result.output
    entry = order_doc(doc, "EXC-1086-1")
    assert entry["actions"] == [] and entry["decision"] == "already_shipped"
    assert probe.mutations(mark).count("fulfillmentOrderHold") == 3  # the other three exchanges only
    assert probe.our_holds("EXC-1086-1") == [] and probe.notes("#1086") == []
    assert "pre-order" not in [t.lower() for t in probe.order("EXC-1086-1").tags]


@pytest.mark.parametrize(
    ("key", "value"),
    [("external_release", "sometimes"), ("rehold_limit", "0"), ("rehold_limit", "many"),
     ("rehold_window", "30s"), ("rehold_window", "31d")],
)
def test_config_set_refuses_a_guard_setting_out_of_range(cli, db, checks, key, value):
    checks.clean_error(cli(["config", "set", key, value, "--db", str(db)]), 2, key)


def test_config_list_shows_the_guard_settings_and_takes_their_ends(cli, db):
    assert cli(["config", "set", "note_label", "loopsync", "--db", str(db)]).code == 0  # creates the state file
    listed = json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)
    assert (listed["external_release"], listed["rehold_limit"], listed["rehold_window"]) == ("rehold", "3", "24h")
    for key, value in [("external_release", "respect"), ("rehold_limit", "1"), ("rehold_window", "1m"),
                       ("rehold_window", "30d")]:
        assert cli(["config", "set", key, value, "--db", str(db)]).code == 0
        assert json.loads(cli(["config", "list", "--db", str(db), "--json"]).out)[key] == value


def test_a_re_hold_is_shown_by_the_scan_and_by_status_for_people(cli, connected, probe):
    wide = {"COLUMNS": "200"}
    assert scan(cli, connected)[0].code == 0
    activity.release_every_hold(probe.world, "EXC-1086-1")

    result = cli(["scan", "--db", str(connected), "--verbose"], env=wide)

    assert result.code == 0, result.output
    assert "re-held: the hold was released outside loopsync" in result.out
    assert "1 held (1 re-held)" in result.err
    shown = cli(["status", "--db", str(connected)], env=wide).out
    assert "Holds put back" in shown and "EXC-1086-1" in shown.split("Holds put back")[1]
