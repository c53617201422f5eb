"""Shopify's JSON → ``models`` objects, with no I/O.

Nested connections arrive here already complete: the client follows their
cursors first (``ShopifyClient._drain``) and hands over every node. Anything
missing that loopsync cannot do without becomes an ApiError naming it, never a
KeyError or AttributeError.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from loopsync.errors import ApiError
from loopsync.models import (
    FulfillmentOrder,
    FulfillmentOrderLine,
    Hold,
    LineItem,
    Order,
    OrderSummary,
    PreorderPlan,
    UserError,
    VariantInfo,
)


def need(obj: Any, key: str, what: str) -> Any:
    """obj[key], or an ApiError naming what was missing (never an AttributeError)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        raise ApiError(f"Shopify's answer left out {what}; loopsync cannot continue without it.")
    return value


def nodes(connection: Any, what: str) -> Iterator[dict]:
    if not isinstance(connection, dict):
        raise ApiError(f"Shopify's answer left out the {what} list.")
    found = connection.get("nodes")
    if found is None:
        edges = connection.get("edges")
        found = [e.get("node") for e in edges or () if isinstance(e, dict)] if edges is not None else None
    if not isinstance(found, list):
        raise ApiError(f"Shopify's answer left out the {what} list.")
    return (n for n in found if isinstance(n, dict))


def order_summary(raw: dict) -> OrderSummary:
    # The scan parses one of these for every order in the window: the common case skips need().
    order_id, name, updated = raw.get("id"), raw.get("name"), raw.get("updatedAt")
    if order_id is None or name is None or updated is None:
        need(raw, "id", "an order"), need(raw, "name", "an order"), need(raw, "updatedAt", "an order")
    return OrderSummary(
        id=order_id,
        name=name,
        tags=tuple(raw.get("tags") or ()),
        updated_at=_datetime(updated, "an order's updatedAt"),
    )


def order(
    raw: dict,
    *,
    line_items: Iterable[dict],
    fulfillment_orders: Iterable[FulfillmentOrder],
    exchange_items: Iterable[dict],
) -> Order:
    """An order whose nested connections were drained: ``exchange_items`` are its
    returns' exchangeLineItems nodes, all returns together."""
    order_id = need(raw, "id", "an order's id")
    exchange_ids: set[str] = set()
    for item in exchange_items:
        for line in item.get("lineItems") or ():
            if isinstance(line, dict) and line.get("id"):
                exchange_ids.add(line["id"])
    name = need(raw, "name", f"the name of {order_id}")
    return Order(
        id=order_id,
        legacy_id=_int(need(raw, "legacyResourceId", f"the legacy id of {name}"), f"the legacy id of {name}"),
        name=name,
        created_at=_datetime(need(raw, "createdAt", f"the creation time of {name}"), name),
        tags=tuple(t for t in raw.get("tags") or () if isinstance(t, str)),
        line_items=tuple(line_item(li, name) for li in line_items),
        fulfillment_orders=tuple(fulfillment_orders),
        exchange_line_item_ids=frozenset(exchange_ids),
        closed=bool(raw.get("closed")),
        cancelled=raw.get("cancelledAt") is not None,
    )


def fulfillment_order(raw: dict, lines: Iterable[dict], order_name: str) -> FulfillmentOrder:
    """A fulfillment order with all its ``lines`` (drained by the client)."""
    fo_id = need(raw, "id", f"a fulfillment order's id on {order_name}")
    return FulfillmentOrder(
        id=fo_id,
        status=need(raw, "status", f"the status of fulfillment order {fo_id}"),
        lines=tuple(fulfillment_order_line(line, fo_id) for line in lines),
        holds=tuple(hold(h) for h in raw.get("fulfillmentHolds") or () if isinstance(h, dict)),
        supported_actions=frozenset(
            a["action"] for a in raw.get("supportedActions") or () if isinstance(a, dict) and a.get("action")
        ),
    )


def variant(raw: dict, plans: Iterable[dict], group_ids: Iterable[str] = ()) -> VariantInfo:
    """A variant that exists, with every selling plan of every group it is in (drained by the client).

    Only PRE_ORDER plans matter; a plan shared by two groups counts once.
    """
    variant_id = raw["id"]
    found: list[PreorderPlan] = []
    seen: set[str] = set()
    for plan in plans:
        if plan.get("category") != "PRE_ORDER" or not plan.get("id") or plan["id"] in seen:
            continue
        seen.add(plan["id"])
        policy = plan.get("deliveryPolicy") or {}
        exact = policy.get("fulfillmentExactTime")
        found.append(
            PreorderPlan(
                id=plan["id"],
                description=plan.get("description"),
                fulfillment_trigger=policy.get("fulfillmentTrigger"),
                fulfillment_exact_time=_datetime(exact, variant_id) if exact else None,
            )
        )
    return VariantInfo(
        id=variant_id,
        exists=True,
        preorder_plans=tuple(found),
        shipping_window_metafield=(raw.get("metafield") or {}).get("value"),
        group_ids=tuple(sorted(set(group_ids))),
    )


def line_item(raw: dict, order_name: str) -> LineItem:
    plan = raw.get("sellingPlan") or {}
    return LineItem(
        id=need(raw, "id", f"a line item's id on {order_name}"),
        variant_id=(raw.get("variant") or {}).get("id"),
        selling_plan_id=plan.get("sellingPlanId"),
    )


def fulfillment_order_line(raw: dict, fo_id: str) -> FulfillmentOrderLine:
    line = need(raw, "lineItem", f"the order line behind a line of fulfillment order {fo_id}")
    return FulfillmentOrderLine(
        id=need(raw, "id", f"a line's id on fulfillment order {fo_id}"),
        line_item_id=need(line, "id", f"the order line behind a line of fulfillment order {fo_id}"),
        variant_id=(raw.get("variant") or {}).get("id"),
        sku=raw.get("sku") or None,
        remaining_quantity=_int(raw.get("remainingQuantity", 0), f"a remaining quantity on {fo_id}"),
    )


def hold(raw: dict) -> Hold:
    return Hold(
        id=need(raw, "id", "a fulfillment hold's id"),
        handle=raw.get("handle") or "",
        held_by_us=bool(raw.get("heldByRequestingApp")),
        app_name=(raw.get("heldByApp") or {}).get("title"),
        reason=raw.get("reason") or None,
        reason_notes=raw.get("reasonNotes") or None,
    )


def user_errors(raw: Any) -> tuple[UserError, ...]:
    errors = []
    for item in raw or ():
        if not isinstance(item, dict):
            continue
        errors.append(UserError(message=item.get("message") or "unknown error", code=item.get("code")))
    return tuple(errors)


def _int(value: Any, what: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(f"Shopify sent {what} that is not a number.") from None


def _datetime(value: str, context: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ApiError(f"Shopify sent a timestamp on {context} that is not a date.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
