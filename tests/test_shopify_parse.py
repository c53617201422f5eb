"""shopify.parse on its own: raw JSON in, models out, with no server and no socket.

The client drains nested pages before parsing; these tests hand parse the
complete nodes directly, which is what lets parsing be tested without HTTP.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from loopsync.errors import ApiError
from loopsync.shopify import parse

# Pure code: the no-network guard proves these tests stay fast and offline.
pytestmark = pytest.mark.no_network

ORDER_ID = "gid://shopify/Order/1"


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("shopify.parse opened a socket")

    monkeypatch.setattr(socket, "socket", refuse)


def raw_order(**overrides):
    raw = {
        "id": ORDER_ID,
        "legacyResourceId": "1",
        "name": "EXC-1086-1",
        "createdAt": "2026-11-20T10:00:00Z",
        "tags": ["pre-order", 7],
        "closed": False,
        "cancelledAt": None,
        # A truncated first page: parse must use the nodes it is given, not these.
        "lineItems": {"nodes": [{"id": "ignored"}], "pageInfo": {"hasNextPage": True, "endCursor": "c"}},
    }
    raw.update(overrides)
    return raw


def line(n: int) -> dict:
    return {"id": f"gid://shopify/LineItem/{n}", "variant": {"id": f"gid://shopify/ProductVariant/{n}"}}


def test_order_is_built_from_the_drained_nodes():
    fo_raw = {"id": "gid://shopify/FulfillmentOrder/1", "status": "OPEN", "supportedActions": [{"action": "HOLD"}]}
    fo = parse.fulfillment_order(
        fo_raw, [{"id": "gid://shopify/FulfillmentOrderLineItem/1", "lineItem": line(1), "remainingQuantity": 2}], "x"
    )
    order = parse.order(
        raw_order(),
        line_items=[line(1), line(2)],
        fulfillment_orders=[fo],
        exchange_items=[{"lineItems": [line(2)]}, {"lineItems": [{"id": None}, "junk"]}],
    )
    assert [li.id for li in order.line_items] == ["gid://shopify/LineItem/1", "gid://shopify/LineItem/2"]
    assert order.exchange_line_item_ids == frozenset({"gid://shopify/LineItem/2"})
    assert order.tags == ("pre-order",)  # non-strings dropped
    assert order.created_at == datetime(2026, 11, 20, 10, tzinfo=UTC) and order.legacy_id == 1
    assert order.fulfillment_orders[0].lines[0].remaining_quantity == 2
    assert order.fulfillment_orders[0].supported_actions == frozenset({"HOLD"})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse.order(raw_order(name=None), line_items=[], fulfillment_orders=[], exchange_items=[]),
         f"the name of {ORDER_ID}"),
        (lambda: parse.order(raw_order(legacyResourceId="x1"), line_items=[], fulfillment_orders=[], exchange_items=[]),
         "legacy id of EXC-1086-1 that is not a number"),
        (lambda: parse.fulfillment_order_line({"id": "l"}, "gid://shopify/FulfillmentOrder/9"),
         "the order line behind a line of fulfillment order gid://shopify/FulfillmentOrder/9"),
        (lambda: parse.order_summary({"id": "o", "name": "#1", "updatedAt": "yesterday"}), "not a date"),
    ],
)
def test_missing_or_malformed_fields_are_named(call, message):
    with pytest.raises(ApiError, match=message):
        call()


def test_variant_keeps_each_preorder_plan_once():
    plan = {
        "id": "gid://shopify/SellingPlan/1",
        "category": "PRE_ORDER",
        "description": "Ships in spring",
        "deliveryPolicy": {"fulfillmentTrigger": "EXACT_TIME", "fulfillmentExactTime": "2027-03-15T00:00:00Z"},
    }
    subscription = {"id": "gid://shopify/SellingPlan/2", "category": "SUBSCRIPTION"}
    variant = parse.variant(
        {"id": "gid://shopify/ProductVariant/1", "metafield": {"value": "March"}}, [plan, subscription, plan]
    )
    assert [p.id for p in variant.preorder_plans] == ["gid://shopify/SellingPlan/1"]
    assert variant.preorder_plans[0].fulfillment_exact_time == datetime(2027, 3, 15, tzinfo=UTC)
    assert variant.on_preorder and variant.shipping_window_metafield == "March"
