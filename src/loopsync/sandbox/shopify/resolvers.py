"""The query fields: each resolver reads the ``World`` through the request's context.

Grouped by the schema type they answer for; fields not listed here resolve by name
(``registry.default_resolve``).

Why one module of about 510 lines: it is one table of resolvers, a few lines each, in the
schema's own order; the rules they apply live in ``rules`` and the search in ``search``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError

from loopsync.sandbox.shopify import rules, search, subscriptions
from loopsync.sandbox.shopify.context import type_name_of
from loopsync.sandbox.shopify.pagination import connection, page
from loopsync.sandbox.shopify.registry import Resolvers, ctx_of
from loopsync.sandbox.shopify.scopes import NODE_SCOPES
from loopsync.sandbox.webhooks import API_VERSION
from loopsync.sandbox.world import (
    ExchangeLineItem,
    FulfillmentHold,
    FulfillmentOrder,
    FulfillmentOrderLineItem,
    LineItem,
    Order,
    Product,
    SellingPlan,
    SellingPlanGroup,
    ShopifyReturn,
    Variant,
    WebhookSubscription,
    gid,
    gid_number,
    iso,
)

QUERIES = Resolvers()


def _order_number(order: Order) -> int:
    digits = re.findall(r"\d+", order.name)
    return int(digits[-1]) if digits else gid_number(order.id)


ORDER_SORT_VALUES: dict[str, Callable[[Order], Any]] = {
    "CREATED_AT": lambda o: iso(o.created_at),
    "PROCESSED_AT": lambda o: iso(o.created_at),
    "UPDATED_AT": lambda o: iso(o.updated_at),
    "ORDER_NUMBER": _order_number,
    # GUESS: the other sort keys (price, customer name, ...) are not modeled and sort by id.
}


# QueryRoot


@QUERIES.field("QueryRoot", "shop")
def _shop(_src, info, **_):
    w = ctx_of(info).world
    return {"__typename": "Shop", "id": gid("Shop", 1), "name": w.shop_name, "myshopifyDomain": w.shop_domain,
            "email": f"owner@{w.shop_domain}", "currencyCode": "USD", "ianaTimezone": "Etc/UTC"}


@QUERIES.field("QueryRoot", "currentAppInstallation")
def _installation(_src, info, **_):
    app = ctx_of(info).app
    return {
        "__typename": "AppInstallation",
        "id": gid("AppInstallation", gid_number(app.id)),
        "app": app,
        "accessScopes": [{"handle": s, "description": ""} for s in app.scopes],
    }


@QUERIES.field("QueryRoot", "order", "fulfillmentOrder", "product", "productVariant", "sellingPlanGroup", "return")
def _by_id(_src, info, id, **_):
    wanted = {"order": "Order", "fulfillmentOrder": "FulfillmentOrder", "product": "Product",
              "productVariant": "ProductVariant", "sellingPlanGroup": "SellingPlanGroup", "return": "Return"}
    obj = ctx_of(info).lookup(id)
    return obj if type_name_of(obj) == wanted[info.field_name] else None


def _node(info, global_id: str):
    ctx = ctx_of(info)
    obj = ctx.lookup(global_id)
    name = type_name_of(obj)
    if obj is None or name is None or "Node" not in {i.name for i in info.schema.get_type(name).interfaces}:
        return None
    if name in NODE_SCOPES:
        ctx.require(info.field_name, NODE_SCOPES[name])
    return obj


@QUERIES.field("QueryRoot", "node")
def _node_field(_src, info, id, **_):
    return _node(info, id)


@QUERIES.field("QueryRoot", "nodes")
def _nodes(_src, info, ids, **_):
    return [_node(info, i) for i in ids]


@QUERIES.field("QueryRoot", "orders")
def _orders(_src, info, **args):
    world = ctx_of(info).world
    sort_name = args.get("sortKey") or "PROCESSED_AT"
    try:
        ordered, keys = search.sorted_orders(world, args.get("query"), sort_name, ORDER_SORT_VALUES.get(sort_name))
    except search.SearchSyntaxError as exc:
        raise GraphQLError(str(exc)) from exc
    return page(ordered, keys, args)


@QUERIES.field("QueryRoot", "products")
def _products(_src, info, **args):
    return connection(ctx_of(info).world.products.values(), args)


@QUERIES.field("QueryRoot", "productVariants")
def _variants(_src, info, **args):
    return connection(ctx_of(info).world.variants.values(), args)


@QUERIES.field("QueryRoot", "sellingPlanGroups")
def _groups(_src, info, **args):
    return connection(ctx_of(info).world.selling_plan_groups.values(), args)


# Order


@QUERIES.field("Order", "legacyResourceId")
@QUERIES.field("ProductVariant", "legacyResourceId")
@QUERIES.field("Product", "legacyResourceId")
def _legacy_id(src, _info, **_):
    return str(gid_number(src.id))


# The Online Store sales channel's app id on every shop.
ONLINE_STORE_APP_NUMBER = 580111


@QUERIES.field("Order", "app")
def _order_app(src: Order, info, **_):
    if not src.app_name:
        return None
    installed = next((a for a in ctx_of(info).world.apps.values() if a.title == src.app_name), None)
    if installed is not None:
        app_id = installed.id
    elif src.app_name == "Online Store":
        app_id = gid("App", ONLINE_STORE_APP_NUMBER)
    else:
        app_id = gid("App", zlib.crc32(src.app_name.encode()))
    return {"__typename": "OrderApp", "id": app_id, "name": src.app_name}


@QUERIES.field("Order", "customAttributes")
def _attributes(src: Order, _info, **_):
    return [{"key": k, "value": v} for k, v in src.custom_attributes]


@QUERIES.field("Order", "lineItems")
def _order_lines(src: Order, _info, **args):
    return connection(src.line_items, args)


@QUERIES.field("Order", "fulfillmentOrders")
def _order_fos(src: Order, info, **args):
    fos = [ctx_of(info).world.fulfillment_orders[i] for i in src.fulfillment_order_ids]
    # GUESS: `displayable`/`query` arguments are not modeled; every fulfillment order is listed.
    return connection(fos, args)


@QUERIES.field("Order", "returns")
def _order_returns(src: Order, _info, **args):
    return connection(src.returns, args)


@QUERIES.field("Order", "returnStatus")
def _return_status(src: Order, _info, **_):
    return search.order_return_status(src)


@QUERIES.field("Order", "displayFulfillmentStatus")
def _display_fulfillment_status(src: Order, info, **_):
    statuses = {ctx_of(info).world.fulfillment_orders[i].status for i in src.fulfillment_order_ids}
    if statuses and statuses <= {"CLOSED"}:
        return "FULFILLED"
    if "ON_HOLD" in statuses:
        return "ON_HOLD"
    if "SCHEDULED" in statuses:
        return "SCHEDULED"
    return "UNFULFILLED"


# LineItem


@QUERIES.field("LineItem", "variant")
@QUERIES.field("FulfillmentOrderLineItem", "variant")
def _line_variant(src, info, **_):
    ctx = ctx_of(info)
    line = src if isinstance(src, LineItem) else ctx.lookup(src.line_item_id)
    return ctx.world.variants.get(line.variant_id) if line and line.variant_id else None


@QUERIES.field("LineItem", "name")
def _line_name(src: LineItem, info, **_):
    variant = ctx_of(info).world.variants.get(src.variant_id or "")
    if variant and variant.title != "Default Title":
        return f"{src.title} - {variant.title}"
    return src.title


@QUERIES.field("LineItem", "currentQuantity", "unfulfilledQuantity")
def _line_quantity(src: LineItem, _info, **_):
    return src.quantity


@QUERIES.field("LineItem", "sellingPlan")
def _line_selling_plan(src: LineItem, info, **_):
    if not src.selling_plan_id:
        return None
    plan = ctx_of(info).lookup(src.selling_plan_id)
    return {"__typename": "LineItemSellingPlan", "name": plan.name if plan else "", "sellingPlanId": src.selling_plan_id}


# Products


@QUERIES.field("ProductVariant", "product")
def _variant_product(src: Variant, info, **_):
    return ctx_of(info).world.products[src.product_id]


@QUERIES.field("ProductVariant", "displayName")
def _variant_display(src: Variant, info, **_):
    return f"{ctx_of(info).world.products[src.product_id].title} - {src.title}"


@QUERIES.field("ProductVariant", "sellingPlanGroups")
def _variant_groups(src: Variant, info, **args):
    groups = [g for g in ctx_of(info).world.selling_plan_groups.values() if src.id in g.variant_ids]
    return connection(groups, args)


@QUERIES.field("ProductVariant", "metafield")
def _variant_metafield(src: Variant, _info, key, namespace=None, **_):
    if namespace is None and "." in key:
        namespace, key = key.split(".", 1)
    return src.metafields.get((namespace or "", key))


@QUERIES.field("ProductVariant", "metafields")
def _variant_metafields(src: Variant, _info, **args):
    fields = [m for m in src.metafields.values() if m.id and args.get("namespace") in (None, m.namespace)]
    return connection(fields, args)


@QUERIES.field("Product", "variants")
def _product_variants(src: Product, info, **args):
    return connection([ctx_of(info).world.variants[v] for v in src.variant_ids], args)


@QUERIES.field("Product", "sellingPlanGroups")
def _product_groups(src: Product, info, **args):
    groups = [g for g in ctx_of(info).world.selling_plan_groups.values() if g.variant_ids & set(src.variant_ids)]
    return connection(groups, args)


@QUERIES.field("SellingPlanGroup", "sellingPlans")
def _group_plans(src: SellingPlanGroup, _info, **args):
    return connection(src.plans, args)


@QUERIES.field("SellingPlanGroup", "productVariants")
def _group_variants(src: SellingPlanGroup, info, **args):
    world = ctx_of(info).world
    return connection([world.variants[v] for v in src.variant_ids if v in world.variants], args)


@QUERIES.field("SellingPlanGroup", "productVariantsCount")
def _group_variant_count(src: SellingPlanGroup, _info, **_):
    return {"__typename": "Count", "count": len(src.variant_ids), "precision": "EXACT"}


@QUERIES.field("SellingPlan", "deliveryPolicy")
def _delivery_policy(src: SellingPlan, _info, **_):
    exact = src.fulfillment_exact_time
    return {
        "__typename": "SellingPlanFixedDeliveryPolicy",
        "fulfillmentTrigger": src.fulfillment_trigger,
        "fulfillmentExactTime": iso(exact) if exact else None,
        "preAnchorBehavior": "ASAP",
        "intent": "FULFILLMENT_BEGIN",
        "anchors": [],
        "cutoff": None,
    }


@QUERIES.field("SellingPlan", "options")
def _plan_options(src: SellingPlan, _info, **_):
    return [src.name]


# Fulfillment orders


@QUERIES.field("FulfillmentOrder", "orderId")
def _fo_order_id(src: FulfillmentOrder, _info, **_):
    return src.order_id


@QUERIES.field("FulfillmentOrder", "orderName")
def _fo_order_name(src: FulfillmentOrder, info, **_):
    return ctx_of(info).world.orders[src.order_id].name


@QUERIES.field("FulfillmentOrder", "order")
def _fo_order(src: FulfillmentOrder, info, **_):
    return ctx_of(info).world.orders[src.order_id]


@QUERIES.field("FulfillmentOrder", "lineItems")
def _fo_lines(src: FulfillmentOrder, _info, **args):
    return connection(src.line_items, args)


@QUERIES.field("FulfillmentOrder", "fulfillmentHolds")
def _fo_holds(src: FulfillmentOrder, _info, **_):
    return list(src.holds)


@QUERIES.field("FulfillmentOrder", "supportedActions")
def _fo_actions(src: FulfillmentOrder, _info, **_):
    return [{"__typename": "FulfillmentOrderSupportedAction", "action": a, "externalUrl": None}
            for a in rules.supported_actions(src)]


@QUERIES.field("FulfillmentOrderLineItem", "lineItem")
def _foli_line(src: FulfillmentOrderLineItem, info, **_):
    return ctx_of(info).lookup(src.line_item_id)


@QUERIES.field("FulfillmentOrderLineItem", "sku", "productTitle", "variantTitle")
def _foli_text(src: FulfillmentOrderLineItem, info, **_):
    ctx = ctx_of(info)
    line = ctx.lookup(src.line_item_id)
    if info.field_name == "sku":
        return line.sku if line else None
    if info.field_name == "productTitle":
        return line.title if line else ""
    variant = ctx.world.variants.get(line.variant_id or "") if line else None
    return variant.title if variant else None


HOLD_REASON_TEXT = {
    "AWAITING_PAYMENT": "Awaiting payment",
    "AWAITING_RETURN_ITEMS": "Awaiting return items",
    "HIGH_RISK_OF_FRAUD": "High risk of fraud",
    "INCORRECT_ADDRESS": "Incorrect address",
    "INVENTORY_OUT_OF_STOCK": "Inventory out of stock",
    "ONLINE_STORE_POST_PURCHASE_CROSS_SELL": "Online store post purchase cross sell",
    "OTHER": "Other",
    "UNKNOWN_DELIVERY_DATE": "Unknown delivery date",
}


@QUERIES.field("FulfillmentHold", "displayReason")
def _hold_display(src: FulfillmentHold, _info, **_):
    # GUESS: Shopify's human wording of each reason.
    return HOLD_REASON_TEXT.get(src.reason, src.reason.replace("_", " ").capitalize())


@QUERIES.field("FulfillmentHold", "heldByRequestingApp")
def _hold_mine(src: FulfillmentHold, info, **_):
    return src.app_id is not None and src.app_id == ctx_of(info).app.id


@QUERIES.field("FulfillmentHold", "heldByApp")
def _hold_app(src: FulfillmentHold, info, **_):
    return ctx_of(info).world.apps.get(src.app_id or "")


@QUERIES.field("FulfillmentHold", "heldBy")
def _hold_by(src: FulfillmentHold, info, **_):
    app = ctx_of(info).world.apps.get(src.app_id or "")
    return app.title if app else None


@QUERIES.field("FulfillmentHold", "fulfillmentOrder")
def _hold_fo(src: FulfillmentHold, info, **_):
    return ctx_of(info).world.fulfillment_orders[src.fulfillment_order_id]


# Returns


@QUERIES.field("Return", "order")
def _return_order(src: ShopifyReturn, info, **_):
    return ctx_of(info).parent(src.id)


@QUERIES.field("Return", "exchangeLineItems")
def _return_exchanges(src: ShopifyReturn, _info, **args):
    return connection(src.exchange_line_items, args)


@QUERIES.field("Return", "totalQuantity")
def _return_quantity(src: ShopifyReturn, _info, **_):
    return sum(e.quantity for e in src.exchange_line_items)


@QUERIES.field("ExchangeLineItem", "variantId")
def _ex_variant_id(src: ExchangeLineItem, _info, **_):
    return src.variant_id


@QUERIES.field("ExchangeLineItem", "productId")
def _ex_product_id(src: ExchangeLineItem, info, **_):
    variant = ctx_of(info).world.variants.get(src.variant_id)
    return variant.product_id if variant else None


@QUERIES.field("ExchangeLineItem", "variantSku")
def _ex_sku(src: ExchangeLineItem, _info, **_):
    return src.sku


@QUERIES.field("ExchangeLineItem", "variantTitle")
def _ex_variant_title(src: ExchangeLineItem, info, **_):
    variant = ctx_of(info).world.variants.get(src.variant_id)
    return variant.title if variant else None


@QUERIES.field("ExchangeLineItem", "lineItems")
def _ex_lines(src: ExchangeLineItem, info, **_):
    line = ctx_of(info).lookup(src.line_item_id) if src.line_item_id else None
    return [line] if line else None


@QUERIES.field("ExchangeLineItem", "lineItem")
def _ex_line(src: ExchangeLineItem, info, **_):
    return ctx_of(info).lookup(src.line_item_id) if src.line_item_id else None


@QUERIES.field("ExchangeLineItem", "processedQuantity", "processableQuantity", "unprocessedQuantity")
def _ex_quantities(src: ExchangeLineItem, info, **_):
    processed = src.quantity if src.line_item_id else 0
    return {"processedQuantity": processed}.get(info.field_name, src.quantity - processed)


# Webhook subscriptions: an app only ever sees its own.


@QUERIES.field("QueryRoot", "webhookSubscriptions")
def _webhook_subscriptions(_src, info, **args):
    ctx = ctx_of(info)
    if args.get("query"):
        # The search syntax of this connection is not modeled; say so rather than ignore the filter.
        raise GraphQLError("The sandbox does not model webhookSubscriptions(query:); use topics: and uri:.",
                           extensions={"code": "SANDBOX_NOT_MODELED"})
    topics = set(args.get("topics") or ())
    uri = args.get("uri") or args.get("callbackUrl")
    fmt = args.get("format")
    items = [
        s for s in ctx.world.webhook_subscriptions.values()
        if s.app_id == ctx.app.id and (not topics or s.topic in topics) and (uri is None or s.uri == uri)
        and (fmt is None or s.format == fmt)
    ]
    sort_values: dict[str, Callable[[WebhookSubscription], Any]] = {"CREATED_AT": lambda s: iso(s.created_at)}
    return connection(items, args, sort_values.get(args.get("sortKey") or "ID"))


@QUERIES.field("QueryRoot", "webhookSubscription")
def _webhook_subscription(_src, info, id, **_):
    ctx = ctx_of(info)
    return subscriptions.own(ctx.world, ctx.app, id)


@QUERIES.field("WebhookSubscription", "legacyResourceId")
def _subscription_legacy_id(src: WebhookSubscription, _info, **_):
    return gid_number(src.id)


@QUERIES.field("WebhookSubscription", "apiVersion")
def _subscription_version(_src, _info, **_):
    return {"__typename": "ApiVersion", "handle": API_VERSION, "displayName": API_VERSION, "supported": True}


@QUERIES.field("WebhookSubscription", "endpoint")
def _subscription_endpoint(src: WebhookSubscription, _info, **_):
    return {"__typename": "WebhookHttpEndpoint", "callbackUrl": src.uri}


@QUERIES.field("WebhookSubscription", "callbackUrl")
def _subscription_callback(src: WebhookSubscription, _info, **_):
    return src.uri


@QUERIES.field("WebhookSubscription", "includeFields", "metafieldNamespaces", "metafields")
def _subscription_empty_lists(_src, _info, **_):
    return []


@QUERIES.field("WebhookSubscription", "filter", "name")
def _subscription_unset(_src, _info, **_):
    return None
