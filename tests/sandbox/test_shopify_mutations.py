"""fulfillmentOrderHold / fulfillmentOrderReleaseHold / tagsAdd / tagsRemove with Shopify's rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loopsync.sandbox.builders import add_app, add_hold, add_order
from loopsync.sandbox.world import iso

HOLD = """
mutation Hold($id: ID!, $hold: FulfillmentOrderHoldInput!) {
  fulfillmentOrderHold(id: $id, fulfillmentHold: $hold) {
    fulfillmentHold { id handle reason reasonNotes heldByRequestingApp heldByApp { title } }
    fulfillmentOrder { id status updatedAt supportedActions { action }
      lineItems(first: 10) { nodes { id totalQuantity remainingQuantity lineItem { id } } } }
    remainingFulfillmentOrder { id status lineItems(first: 10) { nodes { totalQuantity remainingQuantity
      lineItem { id } } } }
    userErrors { field message code }
  }
}
"""
RELEASE = """
mutation Release($id: ID!, $holdIds: [ID!]) {
  fulfillmentOrderReleaseHold(id: $id, holdIds: $holdIds) {
    fulfillmentOrder { id status fulfillmentHolds { id handle } supportedActions { action } }
    userErrors { field message code }
  }
}
"""
TAGS_ADD = """mutation($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) {
  node { ... on Order { tags updatedAt } } userErrors { field message } } }"""
TAGS_REMOVE = TAGS_ADD.replace("tagsAdd", "tagsRemove")


def hold(gql, fo_id, **spec):
    spec.setdefault("reason", "OTHER")
    return gql.data(HOLD, {"id": fo_id, "hold": spec})["fulfillmentOrderHold"]


def release(gql, fo_id, hold_ids=None):
    variables = {"id": fo_id} if hold_ids is None else {"id": fo_id, "holdIds": hold_ids}
    return gql.data(RELEASE, variables)["fulfillmentOrderReleaseHold"]


def codes(payload):
    return [e["code"] for e in payload["userErrors"]]


@pytest.fixture
def fo(world, store):
    return world.fulfillment_orders[store["order"].fulfillment_order_ids[0]]


def actions(fo_payload):
    return {a["action"] for a in fo_payload["supportedActions"]}


def test_whole_fulfillment_order_hold(gql, world, store, fo):
    world.advance(timedelta(minutes=5))
    out = hold(gql, fo.id, reason="INVENTORY_OUT_OF_STOCK", handle="loopsync-preorder", reasonNotes="pre-order")
    assert out["userErrors"] == []
    assert out["fulfillmentHold"]["handle"] == "loopsync-preorder"
    assert out["fulfillmentHold"]["heldByRequestingApp"] is True
    assert out["fulfillmentHold"]["heldByApp"] == {"title": "loopsync"}
    assert out["fulfillmentOrder"]["status"] == "ON_HOLD"
    assert out["remainingFulfillmentOrder"] is None
    assert {"HOLD", "RELEASE_HOLD"} <= actions(out["fulfillmentOrder"])
    assert out["fulfillmentOrder"]["updatedAt"] == iso(world.now())
    assert store["order"].updated_at == world.now()
    assert world.log[-1].mutations == ["fulfillmentOrderHold"]


def test_partial_hold_splits_line_items_and_quantities(gql, world, store, fo):
    regular_line, pre_line = fo.line_items
    out = hold(gql, fo.id, handle="h", fulfillmentOrderLineItems=[{"id": pre_line.id, "quantity": 1}])
    assert out["userErrors"] == []
    held = out["fulfillmentOrder"]
    assert held["id"] == fo.id and held["status"] == "ON_HOLD"
    assert [(n["lineItem"]["id"], n["remainingQuantity"]) for n in held["lineItems"]["nodes"]] == [
        (pre_line.line_item_id, 1)]
    rest = out["remainingFulfillmentOrder"]
    assert rest["status"] == "OPEN"
    assert sorted((n["lineItem"]["id"], n["remainingQuantity"]) for n in rest["lineItems"]["nodes"]) == sorted(
        [(regular_line.line_item_id, 3), (pre_line.line_item_id, 1)])
    assert rest["id"] in store["order"].fulfillment_order_ids
    assert len(store["order"].fulfillment_order_ids) == 2


def test_hold_listing_every_item_in_full_does_not_split(gql, store, fo):
    items = [{"id": li.id, "quantity": li.remaining_quantity} for li in fo.line_items]
    out = hold(gql, fo.id, fulfillmentOrderLineItems=items)
    assert out["remainingFulfillmentOrder"] is None and out["fulfillmentOrder"]["status"] == "ON_HOLD"


def test_second_hold_needs_a_distinct_handle(gql, fo):
    assert hold(gql, fo.id)["userErrors"] == []
    out = hold(gql, fo.id)
    assert codes(out) == ["DUPLICATE_FULFILLMENT_HOLD_HANDLE"] and out["fulfillmentHold"] is None
    assert hold(gql, fo.id, handle="second")["userErrors"] == []
    assert len(fo.holds) == 2


def test_same_handle_is_fine_for_another_app(gql, world, fo):
    add_hold(world, fo.id, add_app(world, "Upsell", []).id, handle="h", reason="ONLINE_STORE_POST_PURCHASE_CROSS_SELL")
    assert hold(gql, fo.id, handle="h")["userErrors"] == []


def test_ten_holds_per_app_per_fulfillment_order(gql, world, fo):
    for n in range(10):
        assert hold(gql, fo.id, handle=f"h{n}")["userErrors"] == []
    assert codes(hold(gql, fo.id, handle="h10")) == ["FULFILLMENT_ORDER_HOLD_LIMIT_REACHED"]
    # Another app's holds do not count against ours.
    other = add_app(world, "Other", [])
    fo.holds = [h for h in fo.holds if h.handle != "h9"]
    add_hold(world, fo.id, other.id, handle="x")
    assert hold(gql, fo.id, handle="h10")["userErrors"] == []


def test_line_items_on_a_held_fulfillment_order_are_not_splittable(gql, world, fo):
    add_hold(world, fo.id, None, reason="AWAITING_PAYMENT")
    out = hold(gql, fo.id, handle="x", fulfillmentOrderLineItems=[{"id": fo.line_items[0].id, "quantity": 1}])
    assert codes(out) == ["FULFILLMENT_ORDER_NOT_SPLITTABLE"]
    # Without line items, holding an already-held order works (2025-01+).
    assert hold(gql, fo.id, handle="x")["userErrors"] == []


def test_line_item_input_errors(gql, fo):
    line = fo.line_items[0]
    assert codes(hold(gql, fo.id, fulfillmentOrderLineItems=[
        {"id": line.id, "quantity": 1}, {"id": line.id, "quantity": 1}])) == ["DUPLICATED_FULFILLMENT_ORDER_LINE_ITEMS"]
    assert codes(hold(gql, fo.id, fulfillmentOrderLineItems=[{"id": line.id, "quantity": 0}])) == [
        "GREATER_THAN_ZERO"]
    assert codes(hold(gql, fo.id, fulfillmentOrderLineItems=[{"id": line.id, "quantity": -2}])) == [
        "GREATER_THAN_ZERO"]
    assert codes(hold(gql, fo.id, fulfillmentOrderLineItems=[{"id": line.id, "quantity": 4}])) == [
        "INVALID_LINE_ITEM_QUANTITY"]
    assert fo.status == "OPEN" and fo.holds == []


def test_unknown_fulfillment_order(gql):
    out = hold(gql, "gid://shopify/FulfillmentOrder/1")
    assert codes(out) == ["FULFILLMENT_ORDER_NOT_FOUND"] and out["userErrors"][0]["field"] == ["id"]
    out = release(gql, "gid://shopify/FulfillmentOrder/1")
    assert codes(out) == ["FULFILLMENT_ORDER_NOT_FOUND"]


@pytest.mark.parametrize("kwargs", [{"closed": True}, {"cancelled": True}])
def test_closed_or_cancelled_fulfillment_order_cannot_be_held(gql, world, store, kwargs):
    order = add_order(world, "#2001", [{"variant_id": store["regular"]}], **kwargs)
    fo = world.fulfillment_orders[order.fulfillment_order_ids[0]]
    out = hold(gql, fo.id)
    assert len(out["userErrors"]) == 1 and out["fulfillmentHold"] is None
    assert fo.holds == []
    data = gql.data("query($id: ID!) { fulfillmentOrder(id: $id) { supportedActions { action } } }", {"id": fo.id})
    assert data["fulfillmentOrder"]["supportedActions"] == []


def test_release_named_hold_keeps_others_and_status(gql, world, fo):
    merchant = add_hold(world, fo.id, None, reason="AWAITING_PAYMENT")
    mine = hold(gql, fo.id, handle="loopsync")["fulfillmentHold"]["id"]
    out = release(gql, fo.id, [mine])
    assert out["userErrors"] == []
    assert [h["id"] for h in out["fulfillmentOrder"]["fulfillmentHolds"]] == [merchant.id]
    assert out["fulfillmentOrder"]["status"] == "ON_HOLD"


def test_release_last_hold_restores_previous_status(gql, world, fo):
    world.advance(timedelta(minutes=1))
    mine = hold(gql, fo.id, handle="a")["fulfillmentHold"]["id"]
    world.advance(timedelta(minutes=1))
    out = release(gql, fo.id, [mine])
    assert out["fulfillmentOrder"]["status"] == "OPEN"
    assert "RELEASE_HOLD" not in actions(out["fulfillmentOrder"])
    assert "HOLD" in actions(out["fulfillmentOrder"])
    assert fo.updated_at == world.now()


def test_release_restores_scheduled(gql, world, store):
    order = add_order(world, "#2002", [{"variant_id": store["pre"]}],
                      fulfillment_orders=[{"status": "SCHEDULED", "lines": [0]}])
    fo_id = order.fulfillment_order_ids[0]
    mine = hold(gql, fo_id, handle="a")["fulfillmentHold"]["id"]
    assert release(gql, fo_id, [mine])["fulfillmentOrder"]["status"] == "SCHEDULED"


def test_cannot_release_another_apps_or_the_merchants_hold(gql, world, fo):
    theirs = add_hold(world, fo.id, add_app(world, "Upsell", []).id, handle="upsell")
    merchant = add_hold(world, fo.id, None, reason="AWAITING_PAYMENT")
    for hold_id in (theirs.id, merchant.id):
        out = release(gql, fo.id, [hold_id])
        assert codes(out) == ["INVALID_ACCESS"]
    assert len(fo.holds) == 2 and fo.status == "ON_HOLD"


def test_release_without_hold_ids_releases_every_hold(gql, world, fo):
    add_hold(world, fo.id, add_app(world, "Upsell", []).id, handle="upsell")
    hold(gql, fo.id, handle="a")
    out = release(gql, fo.id)
    assert out["userErrors"] == []
    assert out["fulfillmentOrder"]["fulfillmentHolds"] == [] and out["fulfillmentOrder"]["status"] == "OPEN"


def test_release_unknown_hold_id(gql, fo):
    hold(gql, fo.id, handle="a")
    out = release(gql, fo.id, ["gid://shopify/FulfillmentHold/1"])
    assert len(out["userErrors"]) == 1 and len(fo.holds) == 1


def test_held_by_requesting_app_is_per_token(gql, world, client_for, fo):
    hold(gql, fo.id, handle="a")
    add_app(world, "Other", ["read_orders", "read_merchant_managed_fulfillment_orders"], static_token="other")
    data = client_for("other").data(
        "query($id: ID!) { fulfillmentOrder(id: $id) { fulfillmentHolds { heldByRequestingApp } } }", {"id": fo.id})
    assert data["fulfillmentOrder"]["fulfillmentHolds"] == [{"heldByRequestingApp": False}]


def test_tags_add_dedupes_case_insensitively_and_splits_commas(gql, world, store):
    order = store["order"]
    world.advance(timedelta(minutes=1))
    out = gql.data(TAGS_ADD, {"id": order.id, "tags": ["loop exchange", "preorder-hold, Held"]})["tagsAdd"]
    assert out["userErrors"] == []
    assert out["node"]["tags"] == ["Loop Exchange", "preorder-hold", "Held"]
    assert out["node"]["updatedAt"] == iso(world.now())
    assert world.log[-1].mutations == ["tagsAdd"]


def test_tags_remove_is_case_insensitive(gql, world, store):
    order = store["order"]
    gql.data(TAGS_ADD, {"id": order.id, "tags": ["preorder-hold"]})
    out = gql.data(TAGS_REMOVE, {"id": order.id, "tags": ["PREORDER-HOLD", "absent"]})["tagsRemove"]
    assert out["node"]["tags"] == ["Loop Exchange"]


def test_noop_tag_change_leaves_updated_at(gql, world, store):
    order = store["order"]
    before = order.updated_at
    world.advance(timedelta(minutes=1))
    gql.data(TAGS_ADD, {"id": order.id, "tags": ["Loop Exchange"]})
    assert order.updated_at == before


def test_tags_on_unknown_resource(gql):
    out = gql.data(TAGS_ADD, {"id": "gid://shopify/Order/1", "tags": ["x"]})["tagsAdd"]
    assert out["node"] is None and out["userErrors"][0]["field"] == ["id"]
