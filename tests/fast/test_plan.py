"""The planner: plain orders in, intents out. No store, no clients, no sockets."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from reconcile_fakes import ON_PREORDER, OURS, PRE, SHIPPED, STOCK, T0, fo, order

from loopsync import detect, guard
from loopsync.reconcile import plan
from loopsync.reconcile.plan import (
    AddTag,
    ClearReleaseNote,
    HoldRecord,
    KeepHold,
    LedgerView,
    MarkHoldClosed,
    MarkManualRelease,
    PlaceHold,
    PostNote,
    RecordHoldLoss,
    ReleaseHold,
    SettleRelease,
)
from loopsync.settings import load_settings

S = load_settings(None)


def planned(o, *, variants=ON_PREORDER, ledger=LedgerView(), connected=True, settings=S, overrides=None):
    return plan.plan_order(o, variants, overrides or {}, settings, ledger, loop_connected=connected, now=T0)


def kinds(p) -> list[type]:
    return [type(i) for i in p.intents]


def test_a_preorder_exchange_gets_a_whole_hold_the_tag_and_the_note():
    p = planned(order(fo(1, PRE)))
    assert kinds(p) == [PlaceHold, AddTag, PostNote]
    hold, tag, note = p.intents
    assert hold.line_items == () and hold.detail == "whole fulfillment order"
    assert tag == AddTag("pre-order")
    assert note.kind == "pre-order" and note.content == detect.note_text("loopsync", p.window)
    assert (p.decision, p.window) == ("held", "Ships in spring")
    assert p.reason == "1 exchange item(s) on pre-order, estimated shipping: Ships in spring"


def test_a_mixed_fulfillment_order_holds_only_its_preorder_lines():
    (hold,) = [i for i in planned(order(fo(1, PRE, STOCK))).intents if isinstance(i, PlaceHold)]
    assert hold.line_items == (("gid://shopify/FulfillmentOrderLineItem/10", 1),)
    assert hold.detail == "pre-order lines only (split)" and hold.variant_ids == (PRE,)


def test_our_hold_in_place_is_kept_and_a_present_tag_is_not_added_again():
    p = planned(order(fo(1, PRE, holds=(OURS,)), tags=("Pre-Order",)))
    assert kinds(p) == [KeepHold, PostNote]


def test_a_shipped_preorder_is_released_and_no_decision_overrides_the_release():
    p = planned(order(fo(1, PRE, holds=(OURS,))), variants=SHIPPED)
    assert p.intents == [ReleaseHold("gid://shopify/FulfillmentOrder/1", OURS.id, "scan", "its pre-order item shipped")]
    assert p.decision == "no_preorder_items" and p.unless_acted


FO1 = "gid://shopify/FulfillmentOrder/1"
GONE = HoldRecord(FO1, OURS.id, active=True, variant_ids=(PRE,))


def test_a_hold_lifted_outside_loopsync_is_respected_when_set_to_respect():
    p = planned(order(fo(1, PRE)), ledger=LedgerView(holds=(GONE,)), settings=replace(S, external_release="respect"))
    assert p.intents == [SettleRelease(FO1, "external")]
    assert p.decision == "manual_release_respected"


def test_a_hold_lifted_outside_loopsync_is_put_back_with_no_second_tag():
    p = planned(order(fo(1, PRE), tags=("pre-order",)), ledger=LedgerView(holds=(GONE,)))
    assert kinds(p) == [RecordHoldLoss, PlaceHold, PostNote]
    loss, hold, _note = p.intents
    assert loss == RecordHoldLoss(FO1, "rehold")
    assert hold.reheld and hold.detail == guard.REHELD
    assert hold.notes == guard.hold_reason_notes("Ships in spring", "loopsync-release")
    assert (p.decision, p.pending) == ("held", None)


def test_a_fourth_outside_release_within_the_window_is_not_fought():
    lost = replace(GONE, losses_in_window=4)
    p = planned(order(fo(1, PRE)), ledger=LedgerView(holds=(lost,)))
    assert p.intents == [RecordHoldLoss(FO1, "give_up")]
    assert (p.decision, p.pending, p.pending_told) == ("pending", guard.GIVE_UP, False)
    # Later passes: no hold, still pending, but already told (the scan exits 0).
    later = planned(order(fo(1, PRE)), ledger=LedgerView(fight_given_up=True))
    assert later.intents == [] and (later.pending, later.pending_told) == (guard.GIVE_UP, True)


def test_a_gone_hold_whose_fulfillment_order_closed_is_marked_closed_and_nothing_is_sent():
    closed = replace(fo(1, PRE), status="CLOSED")
    p = planned(order(closed), ledger=LedgerView(holds=(GONE,)))
    assert p.intents == [MarkHoldClosed(FO1)]
    assert (p.decision, p.reason) == ("already_shipped", guard.ALREADY_SHIPPED)


def test_an_exchange_whose_preorder_item_already_shipped_gets_nothing():
    shipped = replace(fo(1, PRE), status="CLOSED")
    p = planned(order(shipped))
    assert p.intents == [] and (p.decision, p.reason) == ("already_shipped", guard.ALREADY_SHIPPED)


def test_the_release_tag_added_in_the_admin_releases_our_holds_as_by_hand():
    o = order(fo(1, PRE, holds=(OURS,)), tags=("loopsync-release",))
    p = planned(o, ledger=LedgerView(holds=(replace(GONE, active=True),)))
    why = "released with the tag 'loopsync-release' added in Shopify"
    assert p.intents == [MarkManualRelease(), ReleaseHold(FO1, OURS.id, "manual", why)]
    assert (p.decision, p.reason) == ("released_manually", why)


def test_a_release_we_sent_before_a_crash_is_settled_as_ours():
    ledger = LedgerView(holds=(HoldRecord("gid://shopify/FulfillmentOrder/1", OURS.id, True, release_sent=True),))
    p = planned(order(fo(1, PRE)), ledger=ledger)
    assert p.intents[0] == SettleRelease("gid://shopify/FulfillmentOrder/1", "scan")
    assert p.decision == "held"


def test_the_note_back_off_continues_from_the_ledger():
    ledger = LedgerView(note_attempts=2, note_first_missed_at=T0 - timedelta(hours=1))
    note = planned(order(fo(1, PRE)), ledger=ledger).intents[-1]
    assert note.wait == detect.note_retry(2, T0 - timedelta(hours=1), None, T0)
    assert note.wait.attempts == 3
    assert plan.waiting_text(note.wait).startswith("Loop return not found yet (lookup 3; next ")


def test_a_look_before_the_scheduled_lookup_leaves_the_back_off_where_it_was():
    # A webhook about the order (or loopsync's own tag coming back as orders/updated) reads it
    # minutes before the next lookup is due: the schedule must not jump to the step after.
    due = T0 + timedelta(minutes=4)
    ledger = LedgerView(note_attempts=1, note_first_missed_at=T0 - timedelta(minutes=1), note_next_retry_at=due)
    early = planned(order(fo(1, PRE)), ledger=ledger).intents[-1].wait
    assert (early.attempts, early.next_retry_at, early.news) == (1, due, False)

    on_time = replace(ledger, note_next_retry_at=T0)
    assert planned(order(fo(1, PRE)), ledger=on_time).intents[-1].wait.attempts == 2


def test_disconnected_loop_starts_nothing_new_but_still_releases():
    assert planned(order(fo(1, PRE)), connected=False).decision == "disconnected_skip"
    held = planned(order(fo(1, PRE, holds=(OURS,))), connected=False)
    assert (held.intents, held.decision) == ([], "held")
    shipped = planned(order(fo(1, PRE, holds=(OURS,))), variants=SHIPPED, connected=False)
    assert kinds(shipped) == [ReleaseHold]


def test_the_release_tag_keeps_an_order_unheld_and_a_manual_release_adds_it_once():
    assert planned(order(fo(1, PRE), tags=("loopsync-release",))).decision == "manual_release_respected"
    o = order(fo(1, PRE, holds=(OURS,)))
    assert kinds_of(plan.plan_manual_release(o, S)) == [MarkManualRelease, AddTag, ReleaseHold]
    tagged = order(fo(1, PRE, holds=(OURS,)), tags=("LOOPSYNC-RELEASE",))
    assert kinds_of(plan.plan_manual_release(tagged, S)) == [MarkManualRelease, ReleaseHold]


def kinds_of(intents) -> list[type]:
    return [type(i) for i in intents]


def test_the_release_note_waits_for_the_last_hold_and_goes_to_the_noted_return():
    o = order(fo(1, PRE, holds=(OURS,)), fo(2, PRE, holds=(OURS,)))
    due = LedgerView(release_note_due=True, return_id=7)
    one = {"gid://shopify/FulfillmentOrder/1"}
    both = one | {"gid://shopify/FulfillmentOrder/2"}
    assert plan.plan_release_note(o, one, due, S, loop_connected=True) == []
    assert plan.plan_release_note(o, both, due, S, loop_connected=True) == [
        PostNote(detect.release_note_text("loopsync"), "release", return_id=7),
        ClearReleaseNote(),
    ]
    assert plan.plan_release_note(o, both, LedgerView(release_note_due=False), S, loop_connected=True) == []
    # A hold the ledger still calls active (placed this pass, say) is not released yet either.
    recorded = replace(due, holds=(HoldRecord("gid://shopify/FulfillmentOrder/3", "h3", active=True),))
    assert plan.plan_release_note(o, both, recorded, S, loop_connected=True) == []
    off = replace(S, release_note=False)
    assert plan.plan_release_note(o, both, due, off, loop_connected=True) == [ClearReleaseNote()]
    assert plan.plan_release_note(o, both, due, S, loop_connected=False) == [ClearReleaseNote()]


def test_not_an_exchange_and_closed_orders():
    assert planned(order(fo(1, PRE), name="#1001")).decision == "not_exchange"
    closed = planned(replace(order(fo(1, PRE)), closed=True))
    assert (closed.intents, closed.decision) == ([], "closed")
