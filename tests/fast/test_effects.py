"""The executor, through the Reconciler, against in-process fakes of Shopify and Loop.

The state file is real (SQLite on disk); the clients are the fakes in ``reconcile_fakes``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from reconcile_fakes import (
    OURS,
    PRE,
    SHIPPED,
    STOCK,
    T0,
    FakeLoop,
    FakeShopify,
    fo,
    loop_return,
    order,
    refused,
)

from loopsync import detect, guard, render
from loopsync.models import HoldResult
from loopsync.reconcile import Reconciler
from loopsync.settings import load_settings
from loopsync.store import Store

FO1 = "gid://shopify/FulfillmentOrder/1"


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "state.db")
    s.config.save_connection(shop="fast.myshopify.com", shopify_auth="token", shopify_token="x", loop_api_key="k")
    yield s
    s.close()


def reconciler(store, shopify, loop, *, dry_run=False, settings=None):
    settings = settings or load_settings(None)
    return Reconciler(store, shopify, loop, settings, dry_run=dry_run, clock=lambda: T0)


def test_a_scan_holds_tags_and_notes_once_and_a_second_scan_repeats_nothing(store):
    shopify, loop = FakeShopify(order(fo(1, PRE))), FakeLoop(loop_return())
    report = reconciler(store, shopify, loop).scan()
    (outcome,) = report.outcomes
    assert outcome.decision == "held"
    assert [(a.kind, a.status) for a in outcome.actions] == [("hold", "done"), ("tag", "done"), ("note", "done")]
    assert shopify.writes == [("hold", FO1, ()), ("tag", "gid://shopify/Order/1", ("pre-order",))]
    assert len(loop.posted) == 1 and store.holds.hold(FO1).status == "active"

    again = reconciler(store, shopify, loop).scan()
    assert again.outcomes[0].actions == [] and again.outcomes[0].decision == "held"
    assert len(shopify.writes) == 2 and len(loop.posted) == 1


def test_a_mixed_fulfillment_order_is_split(store):
    shopify = FakeShopify(order(fo(1, PRE, STOCK)))
    outcome = reconciler(store, shopify, FakeLoop(loop_return())).scan().outcomes[0]
    assert shopify.writes[0] == ("hold", FO1, (("gid://shopify/FulfillmentOrderLineItem/10", 1),))
    assert outcome.actions[0].detail == "pre-order lines only (split)"


def test_a_duplicate_hold_is_read_back_and_reported_held(store):
    shopify = FakeShopify(order(fo(1, PRE)))
    # Our first try landed but its answer was lost: Shopify refuses the second as a duplicate.
    shopify.hold_answer = HoldResult(None, None, None, refused("DUPLICATE", "already held"), duplicate=True)
    outcome = reconciler(store, shopify, FakeLoop(loop_return())).scan().outcomes[0]
    assert (outcome.actions[0].kind, outcome.actions[0].status, outcome.decision) == ("hold", "done", "held")
    assert store.holds.hold(FO1).hold_id == OURS.id


def test_a_refused_hold_leaves_the_order_pending(store):
    shopify = FakeShopify(order(fo(1, PRE)))
    shopify.hold_answer = HoldResult(None, None, None, refused("INVALID", "no"))
    outcome = reconciler(store, shopify, FakeLoop(loop_return())).scan().outcomes[0]
    assert outcome.decision == "pending" and outcome.pending == f"Shopify refused the hold on {FO1}: INVALID: no"


def test_a_shipped_preorder_is_released_and_the_return_told_once(store):
    shopify, loop = FakeShopify(order(fo(1, PRE))), FakeLoop(loop_return())
    reconciler(store, shopify, loop).scan()
    shopify.variants = dict(SHIPPED)
    outcome = reconciler(store, shopify, loop).scan().outcomes[0]
    assert outcome.decision == "released" and [a.kind for a in outcome.actions] == ["release", "note"]
    assert store.holds.hold(FO1).status == "released"
    assert loop.posted[-1][1].endswith("The pre-order item is ready: the hold was released.")
    reconciler(store, shopify, loop).scan()
    assert len(loop.posted) == 2


def test_a_hold_lifted_in_the_admin_is_respected_when_set_to_respect(store):
    respect = replace(load_settings(None), external_release="respect")
    shopify, loop = FakeShopify(order(fo(1, PRE))), FakeLoop(loop_return())
    reconciler(store, shopify, loop, settings=respect).scan()
    shopify.release_hold(FO1, [OURS.id])  # a merchant, in the admin
    outcome = reconciler(store, shopify, loop, settings=respect).scan().outcomes[0]
    assert outcome.decision == "manual_release_respected"
    assert [(a.kind, a.status) for a in outcome.actions] == [("release", "observed")]
    assert store.holds.hold(FO1).status == "released_externally" and store.orders.is_manually_released(outcome.order_id)
    assert shopify.writes.count(("hold", FO1, ())) == 1


def test_a_hold_lifted_outside_loopsync_is_put_back_once_and_counted(store):
    shopify, loop = FakeShopify(order(fo(1, PRE))), FakeLoop(loop_return())
    reconciler(store, shopify, loop).scan()
    shopify.release_hold(FO1, [OURS.id])  # Flow, releasing every hold
    report = reconciler(store, shopify, loop).scan()
    [outcome] = report.outcomes
    assert [(a.kind, a.detail) for a in outcome.actions] == [("hold", guard.REHELD)]
    assert outcome.decision == "held" and outcome.reason.endswith(f"; {guard.REHELD}")
    assert report.reheld == 1 and "1 held (1 re-held)" in render.scan_summary(report)
    assert shopify.writes.count(("hold", FO1, ())) == 2 and len(loop.posted) == 1
    assert store.holds.hold(FO1).status == "active" and not store.orders.is_manually_released(outcome.order_id)
    assert [r["times"] for r in store.holds.reheld()] == [1]


def test_no_return_yet_backs_off_and_keeps_the_hold(store):
    shopify, loop = FakeShopify(order(fo(1, PRE))), FakeLoop()
    outcome = reconciler(store, shopify, loop).scan().outcomes[0]
    assert outcome.decision == "held" and outcome.note_wait.attempts == 1
    assert "Loop return not found yet: the hold is in place" in outcome.reason
    assert store.orders.order(outcome.order_id).note_attempts == 1
    loop.returns.append(loop_return())
    again = reconciler(store, shopify, loop).scan().outcomes[0]
    assert [a.kind for a in again.actions] == ["note"] and store.orders.order(outcome.order_id).note_attempts == 0


def test_release_by_hand_tags_releases_and_notes(store):
    shopify, loop = FakeShopify(order(fo(1, PRE))), FakeLoop(loop_return())
    reconciler(store, shopify, loop).scan()
    outcome = reconciler(store, shopify, loop).release_by_hand("EXC-1001-1")
    assert outcome.decision == "released_manually" and outcome.reason == "released by hand"
    assert [a.kind for a in outcome.actions] == ["tag", "release", "note"]
    assert ("tag", outcome.order_id, ("loopsync-release",)) in shopify.writes
    assert reconciler(store, shopify, loop).scan().outcomes[0].decision == "manual_release_respected"


def test_disconnect_during_a_scan_starts_nothing_new(store):
    shopify = FakeShopify(order(fo(1, PRE)))
    rec = reconciler(store, shopify, FakeLoop(loop_return()))
    store.config.forget_loop_key()  # `loopsync disconnect`, from another terminal
    outcome = rec.scan().outcomes[0]
    assert (outcome.decision, outcome.actions, shopify.writes) == ("disconnected_skip", [], [])
    assert rec.loop is None


def test_a_dry_run_prints_the_plan_and_changes_nothing(store):
    shopify, loop = FakeShopify(order(fo(1, PRE)), order(fo(2, PRE), n=2)), FakeLoop(loop_return())
    report = reconciler(store, shopify, loop, dry_run=True).scan()
    assert (shopify.writes, loop.posted, report.scan_id) == ([], [], None)
    assert render.scan_summary(report) == (
        "Dry run: 2 orders read, 2 Loop exchanges; would hold 2, tag 2, note 1 and release 0; 1 pending, "
        "1 waiting for their Loop return."
    )
    assert [a.detail for a in report.outcomes[0].actions] == [
        "would hold whole fulfillment order",
        "would add tag 'pre-order'",
        f"would post: {detect.note_text('loopsync', 'Ships in spring')}",
    ]
    assert store.holds.hold(FO1) is None and store.orders.order("gid://shopify/Order/1") is None


def test_a_dry_run_release_lists_the_release_note(store):
    shopify, loop = FakeShopify(order(fo(1, PRE))), FakeLoop(loop_return())
    reconciler(store, shopify, loop).scan()
    shopify.variants = dict(SHIPPED)
    writes = len(shopify.writes)
    outcome = reconciler(store, shopify, loop, dry_run=True).scan().outcomes[0]
    assert [(a.kind, a.status) for a in outcome.actions] == [("release", "planned"), ("note", "planned")]
    assert len(shopify.writes) == writes and store.holds.hold(FO1).status == "active"


def test_the_fast_tier_refuses_real_sockets():
    import socket

    with pytest.raises(AssertionError, match="opened a socket"):
        socket.create_connection(("127.0.0.1", 9))



def test_a_dry_run_does_not_plan_a_note_loop_already_has(store):
    # An earlier run (another state file) tagged the order and posted the note.
    shopify, loop = FakeShopify(order(fo(1, PRE), tags=("pre-order",))), FakeLoop(loop_return())
    loop.create_note(7, detect.note_text("loopsync", "Ships in spring"))
    outcome = reconciler(store, shopify, loop, dry_run=True).scan().outcomes[0]
    assert [a.kind for a in outcome.actions] == ["hold"]
