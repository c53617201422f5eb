"""Small helpers that put realistic objects into a ``World``.

Scenarios and tests build stores with these instead of hand-assembling
dataclasses, so ids are always fresh global ids and the cross-links the
resolvers rely on (variant <-> product, order <-> fulfillment orders,
fulfillment order line item <-> line item, selling plan group <-> variants)
stay consistent. Each helper takes ``world.lock`` and returns the created object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from loopsync.sandbox.webhook_payloads import order_payload, routing_payload
from loopsync.sandbox.world import (
    App,
    ExchangeLineItem,
    FulfillmentHold,
    FulfillmentOrder,
    FulfillmentOrderLineItem,
    IssuedToken,
    LineItem,
    Metafield,
    Order,
    Product,
    SellingPlan,
    SellingPlanGroup,
    ShopifyReturn,
    Variant,
    World,
)


def _handleize(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "product"


def add_app(
    world: World,
    title: str,
    scopes: Iterable[str],
    static_token: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> App:
    """Install an app. A ``static_token`` is a non-expiring (legacy custom app) Admin API token."""
    with world.lock:
        app = App(
            id=world.new_gid("App"),
            title=title,
            scopes=list(scopes),
            client_id=client_id,
            client_secret=client_secret,
        )
        world.apps[app.id] = app
        if static_token is not None:
            app.static_tokens.add(static_token)
            world.tokens[static_token] = IssuedToken(token=static_token, app_id=app.id, expires_at=None)
        return app


def add_product(world: World, title: str, variants: Sequence[dict[str, Any]] = ()) -> Product:
    """Create a product with variants.

    Each variant dict takes ``title`` (default "Default Title"), ``sku``, ``price``
    and ``metafields``: ``{("namespace", "key"): "value"}`` or
    ``{("namespace", "key"): ("value", "type")}``.
    """
    with world.lock:
        product = Product(id=world.new_gid("Product"), title=title, handle=_handleize(title))
        world.products[product.id] = product
        for spec in variants or [{}]:
            variant = Variant(
                id=world.new_gid("ProductVariant"),
                product_id=product.id,
                title=spec.get("title", "Default Title"),
                sku=spec.get("sku"),
                price=str(spec.get("price", "0.00")),
            )
            for (namespace, key), raw in (spec.get("metafields") or {}).items():
                value, mtype = raw if isinstance(raw, tuple) else (raw, "single_line_text_field")
                variant.metafields[(namespace, key)] = Metafield(
                    namespace=namespace, key=key, value=value, type=mtype, id=world.new_gid("Metafield")
                )
            world.variants[variant.id] = variant
            product.variant_ids.append(variant.id)
        return product


def add_selling_plan_group(
    world: World,
    name: str,
    plans: Sequence[dict[str, Any]],
    variant_ids: Iterable[str] = (),
    merchant_code: str | None = None,
    app_id: str | None = None,
) -> SellingPlanGroup:
    """Create a selling plan group; each plan dict takes ``name``, ``category`` (default
    PRE_ORDER), ``description``, ``fulfillment_trigger``, ``fulfillment_exact_time``."""
    with world.lock:
        group = SellingPlanGroup(
            id=world.new_gid("SellingPlanGroup"),
            name=name,
            merchant_code=merchant_code or _handleize(name),
            plans=[
                SellingPlan(
                    id=world.new_gid("SellingPlan"),
                    name=spec["name"],
                    category=spec.get("category", "PRE_ORDER"),
                    description=spec.get("description"),
                    fulfillment_trigger=spec.get("fulfillment_trigger", "UNKNOWN"),
                    fulfillment_exact_time=spec.get("fulfillment_exact_time"),
                )
                for spec in plans
            ],
            variant_ids=set(variant_ids),
            app_id=app_id,
        )
        world.selling_plan_groups[group.id] = group
        return group


def _new_line_item(world: World, variant_id: str | None, quantity: int, selling_plan_id: str | None,
                   title: str | None = None, sku: str | None = None) -> LineItem:
    variant = world.variants.get(variant_id) if variant_id else None
    if variant is not None:
        product = world.products[variant.product_id]
        default_title = product.title
        sku = sku if sku is not None else variant.sku
    else:
        default_title = "Custom item"
    return LineItem(
        id=world.new_gid("LineItem"),
        variant_id=variant_id,
        title=title or default_title,
        sku=sku,
        quantity=quantity,
        selling_plan_id=selling_plan_id,
    )


def _new_fulfillment_order(world: World, order: Order, lines: Sequence[tuple[LineItem, int]],
                           status: str = "OPEN") -> FulfillmentOrder:
    now = world.now()
    fo = FulfillmentOrder(
        id=world.new_gid("FulfillmentOrder"),
        order_id=order.id,
        status=status,
        line_items=[
            FulfillmentOrderLineItem(
                id=world.new_gid("FulfillmentOrderLineItem"),
                line_item_id=li.id,
                total_quantity=qty,
                remaining_quantity=qty if status not in ("CLOSED", "CANCELLED") else 0,
            )
            for li, qty in lines
        ],
        created_at=now,
        updated_at=now,
    )
    world.fulfillment_orders[fo.id] = fo
    order.fulfillment_order_ids.append(fo.id)
    return fo


def add_order(
    world: World,
    name: str,
    line_items: Sequence[dict[str, Any]],
    tags: Iterable[str] = (),
    created_at: datetime | None = None,
    fulfillment_orders: Sequence[dict[str, Any]] | None = None,
    source_name: str | None = "web",
    app_name: str | None = "Online Store",
    custom_attributes: Iterable[tuple[str, str]] = (),
    closed: bool = False,
    cancelled: bool = False,
    updated_at: datetime | None = None,
) -> Order:
    """Create an order.

    ``line_items``: dicts with ``variant_id``, ``quantity`` (default 1) and optionally
    ``selling_plan_id``, ``title``, ``sku``.

    ``fulfillment_orders``: None gives one OPEN fulfillment order holding every line
    item (CLOSED if the order is closed, CANCELLED if cancelled). Otherwise a list of
    ``{"status": "OPEN", "lines": [index | (index, quantity), ...]}`` where index
    points into ``line_items``; ``[]`` means "not created yet" (Shopify creates
    fulfillment orders a little after the order).
    """
    with world.lock:
        created = created_at or world.now()
        order = Order(
            id=world.new_gid("Order"),
            name=name,
            created_at=created,
            updated_at=updated_at or created,
            line_items=[],
            tags=list(tags),
            source_name=source_name,
            app_name=app_name,
            custom_attributes=[(k, v) for k, v in custom_attributes],
            closed=closed,
            cancelled_at=created if cancelled else None,
        )
        for spec in line_items:
            order.line_items.append(
                _new_line_item(world, spec.get("variant_id"), int(spec.get("quantity", 1)),
                               spec.get("selling_plan_id"), spec.get("title"), spec.get("sku"))
            )
        world.orders[order.id] = order
        world.emit("orders/create", lambda _app: order_payload(world, order))
        if fulfillment_orders is None:
            status = "CANCELLED" if cancelled else "CLOSED" if closed else "OPEN"
            fulfillment_orders = [{"status": status, "lines": list(range(len(order.line_items)))}]
        for fo_spec in fulfillment_orders:
            lines: list[tuple[LineItem, int]] = []
            for ref in fo_spec.get("lines", []):
                index, qty = ref if isinstance(ref, tuple) else (ref, None)
                li = order.line_items[index]
                lines.append((li, li.quantity if qty is None else qty))
            fo = _new_fulfillment_order(world, order, lines, fo_spec.get("status", "OPEN"))
            fo.created_at = fo.updated_at = created
            if fo.status not in ("CLOSED", "CANCELLED"):
                routed(world, fo)
        return order


def routed(world: World, fo: FulfillmentOrder) -> None:
    """``fulfillment_orders/order_routing_complete``: the fulfillment order exists and has its location."""
    world.emit("fulfillment_orders/order_routing_complete", lambda _app: routing_payload(fo))


def route_order(world: World, order_id: str) -> FulfillmentOrder:
    """Create the fulfillment order of an order that had none yet: every line, OPEN.

    Shopify creates fulfillment orders a little after the order (Flow's docs suggest
    waiting minutes); this is that moment, for an order made with ``fulfillment_orders=[]``.
    """
    with world.lock:
        order = world.orders[order_id]
        fo = _new_fulfillment_order(world, order, [(li, li.quantity) for li in order.line_items], "OPEN")
        routed(world, fo)
        world.touch_order(order.id)
        return fo


def add_native_exchange(
    world: World,
    order_id: str,
    variant_id: str,
    quantity: int = 1,
    processed: bool = True,
    return_status: str = "OPEN",
) -> ShopifyReturn:
    """Loop's native-exchange mode: a Shopify Return with an ExchangeLineItem on the original order.

    When ``processed``, Shopify adds a LineItem for the exchange to the order and a
    new OPEN fulfillment order for it (return-processing workflow, even exchange:
    no automatic hold). Tags are the caller's business: Loop adds "Loop Exchange".
    Bumps the order's updatedAt, as any return activity does.
    """
    with world.lock:
        order = world.orders[order_id]
        variant = world.variants[variant_id]
        ret = ShopifyReturn(
            id=world.new_gid("Return"),
            name=f"{order.name}-R{len(order.returns) + 1}",
            status=return_status,
            created_at=world.now(),
        )
        exchange = ExchangeLineItem(
            id=world.new_gid("ExchangeLineItem"),
            line_item_id=None,
            variant_id=variant_id,
            quantity=quantity,
            title=world.products[variant.product_id].title,
            sku=variant.sku,
        )
        ret.exchange_line_items.append(exchange)
        if processed:
            # Exchange items carry no selling plan (ExchangeLineItemInput has none).
            line = _new_line_item(world, variant_id, quantity, None)
            order.line_items.append(line)
            exchange.line_item_id = line.id
            routed(world, _new_fulfillment_order(world, order, [(line, quantity)], "OPEN"))
        order.returns.append(ret)
        world.touch_order(order.id)
        return ret


def add_hold(
    world: World,
    fo_id: str,
    app_id: str | None,
    handle: str = "",
    reason: str = "OTHER",
    reason_notes: str | None = None,
) -> FulfillmentHold:
    """A hold that already exists, e.g. placed by another app (``app_id=None``: the merchant / Shopify).

    Puts the fulfillment order ON_HOLD, remembering its previous status for release.
    Does not bump updatedAt: it stands for state that was there before the scenario starts.
    """
    with world.lock:
        fo = world.fulfillment_orders[fo_id]
        hold = FulfillmentHold(
            id=world.new_gid("FulfillmentHold"),
            fulfillment_order_id=fo.id,
            app_id=app_id,
            handle=handle,
            reason=reason,
            reason_notes=reason_notes,
            created_at=world.now(),
        )
        if fo.status != "ON_HOLD":
            fo.status_before_hold = fo.status
            fo.status = "ON_HOLD"
        fo.holds.append(hold)
        return hold
