"""Shopify's hold, split, release and tag rules (sandbox/shopify/rules.py), called directly: no GraphQL, no HTTP."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from loopsync.sandbox.builders import add_app, add_hold, add_order, add_product
from loopsync.sandbox.shopify import rules
from loopsync.sandbox.shopify.rules import HoldRequest, Placed, Refusal
from loopsync.sandbox.world import World

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def world() -> World:
    return World(now=NOW)


@pytest.fixture
def app(world):
    return add_app(world, "loopsync", [])


@pytest.fixture
def other_app(world):
    return add_app(world, "Upsell Guard", [])


@pytest.fixture
def order(world):
    product = add_product(world, "Trail Boot", [{"sku": "BOOT-42"}, {"sku": "BOOT-43"}])
    regular, pre = product.variant_ids
    return add_order(world, "#1001", [{"variant_id": regular, "quantity": 3}, {"variant_id": pre, "quantity": 2}])


@pytest.fixture
def fo(world, order):
    return world.fulfillment_orders[order.fulfillment_order_ids[0]]


def place(world, fo, app, **request) -> Placed:
    request.setdefault("reason", "OTHER")
    placed = rules.place_hold(world, fo.id, app.id, HoldRequest(**request))
    assert isinstance(placed, Placed), placed
    return placed


def refusal(world, fo_id, app, **request) -> Refusal:
    request.setdefault("reason", "OTHER")
    refused = rules.place_hold(world, fo_id, app.id, HoldRequest(**request))
    assert isinstance(refused, Refusal), refused
    return refused


def quantities(fo):
    return sorted((li.line_item_id, li.total_quantity, li.remaining_quantity) for li in fo.line_items)


# --- placing a hold ----------------------------------------------------------------


def test_holding_the_whole_fulfillment_order(world, app, order, fo):
    world.advance(timedelta(minutes=5))
    placed = place(world, fo, app, handle="loopsync-preorder", reason="INVENTORY_OUT_OF_STOCK", reason_notes="soon")
    assert placed.fulfillment_order is fo and placed.remaining is None
    assert fo.status == "ON_HOLD" and fo.status_before_hold == "OPEN"
    assert fo.holds == [placed.hold]
    assert (placed.hold.app_id, placed.hold.handle, placed.hold.reason, placed.hold.reason_notes) == (
        app.id, "loopsync-preorder", "INVENTORY_OUT_OF_STOCK", "soon")
    assert fo.updated_at == order.updated_at == world.now() == placed.hold.created_at
    assert order.fulfillment_order_ids == [fo.id]


def test_holding_some_lines_splits_the_rest_into_the_remaining_fulfillment_order(world, app, order, fo):
    regular, pre = fo.line_items
    placed = place(world, fo, app, handle="h", lines=[(pre.id, 1)])
    rest = placed.remaining
    assert placed.fulfillment_order is fo and fo.status == "ON_HOLD"
    assert quantities(fo) == [(pre.line_item_id, 1, 1)]
    assert rest is not None and rest.status == "OPEN" and rest.holds == []
    assert quantities(rest) == sorted([(regular.line_item_id, 3, 3), (pre.line_item_id, 1, 1)])
    assert world.fulfillment_orders[rest.id] is rest and rest.order_id == order.id
    assert order.fulfillment_order_ids == [fo.id, rest.id]


def test_the_remaining_fulfillment_order_comes_right_after_the_one_it_was_split_from(world, app, order):
    variant = order.line_items[0].variant_id
    two = add_order(world, "#1002", [{"variant_id": variant}, {"variant_id": variant}, {"variant_id": variant}],
                    fulfillment_orders=[{"lines": [0, 1]}, {"lines": [2]}])
    first, second = (world.fulfillment_orders[i] for i in two.fulfillment_order_ids)
    rest = place(world, first, app, lines=[(first.line_items[1].id, 1)]).remaining
    assert two.fulfillment_order_ids == [first.id, rest.id, second.id]


def test_holding_every_line_in_full_does_not_split(world, app, order, fo):
    placed = place(world, fo, app, lines=[(li.id, li.remaining_quantity) for li in fo.line_items])
    assert placed.remaining is None and len(order.fulfillment_order_ids) == 1 and fo.status == "ON_HOLD"


def test_split_keeps_the_held_quantities_and_moves_the_rest(world, order, fo):
    regular, pre = fo.line_items
    rest = rules.split_fulfillment_order(world, fo, {pre.id: 2})
    assert fo.line_items == [pre] and (pre.total_quantity, pre.remaining_quantity) == (2, 2)
    assert quantities(rest) == [(regular.line_item_id, 3, 3)]
    assert rest.status == fo.status and rest.created_at == world.now()


def test_a_handle_already_used_by_the_same_app_is_refused(world, app, other_app, fo):
    place(world, fo, app, handle="loopsync")
    refused = refusal(world, fo.id, app, handle="loopsync")
    assert (refused.code, refused.field) == ("DUPLICATE_FULFILLMENT_HOLD_HANDLE", ("fulfillmentHold", "handle"))
    assert len(fo.holds) == 1
    # Handles are per app: another app may use the same one.
    assert isinstance(rules.place_hold(world, fo.id, other_app.id, HoldRequest("OTHER", "loopsync")), Placed)


def test_at_most_ten_holds_per_app_on_one_fulfillment_order(world, app, other_app, fo):
    for n in range(rules.MAX_HOLDS_PER_APP):
        place(world, fo, app, handle=f"h{n}")
    assert refusal(world, fo.id, app, handle="h10").code == "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED"
    assert isinstance(rules.place_hold(world, fo.id, other_app.id, HoldRequest("OTHER", "h10")), Placed)


def test_a_handle_over_64_characters_is_refused(world, app, fo):
    assert refusal(world, fo.id, app, handle="x" * 65).field == ("fulfillmentHold", "handle")
    place(world, fo, app, handle="x" * 64)


@pytest.mark.parametrize("status", ["CLOSED", "CANCELLED", "INCOMPLETE"])
def test_a_fulfillment_order_that_cannot_be_held(world, app, fo, status):
    fo.status = status
    refused = refusal(world, fo.id, app)
    assert refused.field == ("id",) and refused.code is None and status in refused.message
    assert fo.holds == [] and fo.status == status


def test_an_unknown_fulfillment_order(world, app):
    assert refusal(world, "gid://shopify/FulfillmentOrder/1", app).code == "FULFILLMENT_ORDER_NOT_FOUND"


def test_lines_of_an_already_held_fulfillment_order_cannot_be_split_off(world, app, fo):
    add_hold(world, fo.id, None, reason="AWAITING_PAYMENT")
    assert refusal(world, fo.id, app, lines=[(fo.line_items[0].id, 1)]).code == "FULFILLMENT_ORDER_NOT_SPLITTABLE"
    place(world, fo, app, handle="whole")  # holding it whole, beside the merchant's hold, is fine


@pytest.mark.parametrize(("lines", "code", "field"), [
    (lambda a, b: [(a, 1), (a, 1)], "DUPLICATED_FULFILLMENT_ORDER_LINE_ITEMS", ()),
    (lambda a, b: [(a, 0)], "GREATER_THAN_ZERO", ("0", "quantity")),
    (lambda a, b: [(a, 1), (b, -1)], "GREATER_THAN_ZERO", ("1", "quantity")),
    (lambda a, b: [(a, 4)], "INVALID_LINE_ITEM_QUANTITY", ("0", "quantity")),
    (lambda a, b: [(b, 1), ("gid://shopify/FulfillmentOrderLineItem/1", 1)], "INVALID_LINE_ITEM_QUANTITY",
     ("1", "id")),
])
def test_bad_lines_are_refused_before_anything_changes(world, app, order, fo, lines, code, field):
    before = quantities(fo)
    refused = refusal(world, fo.id, app, lines=lines(fo.line_items[0].id, fo.line_items[1].id))
    assert refused.code == code
    assert refused.field == ("fulfillmentHold", "fulfillmentOrderLineItems", *field)
    assert quantities(fo) == before and fo.holds == [] and fo.status == "OPEN"
    assert order.fulfillment_order_ids == [fo.id] and len(world.fulfillment_orders) == 1


# --- releasing holds ------------------------------------------------------------


def test_release_without_ids_releases_every_hold_whoever_placed_it(world, app, other_app, fo):
    theirs = add_hold(world, fo.id, other_app.id, handle="upsell")
    merchant = add_hold(world, fo.id, None, reason="AWAITING_RETURN_ITEMS")
    mine = [place(world, fo, app, handle=h).hold for h in ("a", "b")]
    assert rules.release_holds(world, fo.id, other_app.id) == [theirs, merchant, *mine]
    assert fo.holds == [] and fo.status == "OPEN"


def test_release_of_another_apps_or_the_merchants_hold_is_refused(world, app, other_app, fo):
    theirs = add_hold(world, fo.id, other_app.id, handle="upsell")
    merchant = add_hold(world, fo.id, None, reason="AWAITING_PAYMENT")
    mine = place(world, fo, app, handle="a").hold
    for hold in (theirs, merchant):
        refused = rules.release_holds(world, fo.id, app.id, [mine.id, hold.id])
        assert isinstance(refused, Refusal)
        assert (refused.code, refused.field) == ("INVALID_ACCESS", ("holdIds", "1"))
    assert fo.holds == [theirs, merchant, mine]  # a refused release releases nothing, not even our own


def test_release_of_a_hold_that_is_not_on_this_fulfillment_order(world, app, fo):
    place(world, fo, app, handle="a")
    refused = rules.release_holds(world, fo.id, app.id, ["gid://shopify/FulfillmentHold/1"])
    assert isinstance(refused, Refusal) and refused.field == ("holdIds", "0") and len(fo.holds) == 1
    missing = rules.release_holds(world, "gid://shopify/FulfillmentOrder/1", app.id)
    assert isinstance(missing, Refusal) and missing.code == "FULFILLMENT_ORDER_NOT_FOUND"


@pytest.mark.parametrize("status", ["OPEN", "SCHEDULED", "IN_PROGRESS"])
def test_releasing_the_last_hold_restores_the_status_before_the_first(world, app, order, fo, status):
    fo.status = status
    hold = place(world, fo, app, handle="a").hold
    world.advance(timedelta(minutes=1))
    assert rules.release_holds(world, fo.id, app.id, [hold.id]) == [hold]
    assert fo.status == status and fo.holds == []
    assert fo.updated_at == order.updated_at == world.now()


def test_releasing_nothing_changes_nothing(world, app, order, fo):
    before = order.updated_at
    world.advance(timedelta(minutes=1))
    assert rules.release_holds(world, fo.id, app.id) == []
    assert order.updated_at == fo.updated_at == before and fo.status == "OPEN"


def test_supported_actions_follow_the_status_and_the_holds(world, app, fo):
    assert "HOLD" in rules.supported_actions(fo) and "RELEASE_HOLD" not in rules.supported_actions(fo)
    place(world, fo, app)
    assert {"HOLD", "RELEASE_HOLD"} <= set(rules.supported_actions(fo))
    fo.status = "IN_PROGRESS"  # a hold on a status that does not list RELEASE_HOLD still offers it
    assert "RELEASE_HOLD" in rules.supported_actions(fo)
    fo.holds, fo.status = [], "CLOSED"
    assert rules.supported_actions(fo) == []


# --- tags --------------------------------------------------------------------------


def test_tags_add_splits_commas_and_keeps_the_spelling_already_there(world, order):
    order.tags = ["Loop Exchange"]
    world.advance(timedelta(minutes=1))
    assert rules.add_tags(world, order, ["loop exchange", "pre-order, Held", " "]) is True
    assert order.tags == ["Loop Exchange", "pre-order", "Held"] and order.updated_at == world.now()


def test_tags_remove_ignores_case_and_absent_tags(world, order):
    order.tags = ["Loop Exchange", "pre-order"]
    assert rules.remove_tags(world, order, ["PRE-ORDER", "absent"]) is True
    assert order.tags == ["Loop Exchange"]


def test_a_tag_change_that_changes_nothing_leaves_updated_at(world, order):
    order.tags = ["pre-order"]
    before = order.updated_at
    world.advance(timedelta(minutes=1))
    assert rules.add_tags(world, order, ["Pre-Order"]) is False
    assert rules.remove_tags(world, order, ["absent"]) is False
    assert order.tags == ["pre-order"] and order.updated_at == before


def test_the_rules_need_no_graphql():
    """They are plain functions over the world: importing them must not pull in graphql-core."""
    code = "import sys, loopsync.sandbox.shopify.rules; assert 'graphql' not in sys.modules, 'graphql imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
