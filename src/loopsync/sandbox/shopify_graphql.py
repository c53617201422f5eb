"""The sandbox's Shopify Admin GraphQL endpoint, executed against Shopify's official schema.

``ShopifyGraphQL.handle`` takes the access token and raw request body and returns
(HTTP status, extra headers, JSON body) the way Shopify answers: 401 for a bad
token, Shopify-style validation errors, ACCESS_DENIED for missing scopes,
calculated query cost with a per-app leaky bucket, and resolvers over the
``World``. Fields the sandbox does not model resolve to null when nullable and to
a visible "not modeled" error when not, so a gap never passes silently.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from loopsync.sandbox import search
from loopsync.sandbox.cost import MAX_QUERY_COST, CostLimiter, max_cost_body, query_cost, throttled_body
from loopsync.sandbox.shopify_errors import (
    execution_error,
    shopify_validation_errors,
    syntax_error,
    variable_errors,
)
from loopsync.sandbox.world import (
    App,
    ExchangeLineItem,
    FulfillmentHold,
    FulfillmentOrder,
    FulfillmentOrderLineItem,
    LineItem,
    LogEntry,
    Metafield,
    Order,
    Product,
    SellingPlan,
    SellingPlanGroup,
    ShopifyReturn,
    Variant,
    World,
    gid,
    gid_number,
    iso,
)
from loopsync.schema import API_VERSION, admin_schema

INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
# GUESS: a body that is not JSON loses its params in Rails, so Shopify reports the query as missing.
MISSING_QUERY_BODY = {"errors": {"query": "Required parameter missing or invalid"}}
ACCESS_SCOPES_DOC = "https://shopify.dev/api/usage/access-scopes"
MAX_PAGE_SIZE = 250
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"

# --- scopes --------------------------------------------------------------------

READ_ORDERS = ("read_orders",)
WRITE_ORDERS = ("write_orders",)
READ_PRODUCTS = ("read_products",)
READ_FULFILLMENT_ORDERS = (
    "read_merchant_managed_fulfillment_orders",
    "read_third_party_fulfillment_orders",
    "read_assigned_fulfillment_orders",
    "read_marketplace_fulfillment_orders",
)
HOLD_FULFILLMENT_ORDERS = ("write_merchant_managed_fulfillment_orders", "write_third_party_fulfillment_orders")
RELEASE_FULFILLMENT_ORDERS = HOLD_FULFILLMENT_ORDERS + ("write_marketplace_fulfillment_orders",)

FIELD_SCOPES: dict[tuple[str, str], tuple[str, ...]] = {
    ("QueryRoot", "orders"): READ_ORDERS,
    ("QueryRoot", "order"): READ_ORDERS,
    ("QueryRoot", "fulfillmentOrder"): READ_FULFILLMENT_ORDERS,
    ("Order", "fulfillmentOrders"): READ_FULFILLMENT_ORDERS,
    ("QueryRoot", "products"): READ_PRODUCTS,
    ("QueryRoot", "product"): READ_PRODUCTS,
    ("QueryRoot", "productVariant"): READ_PRODUCTS,
    ("QueryRoot", "productVariants"): READ_PRODUCTS,
    ("QueryRoot", "sellingPlanGroup"): READ_PRODUCTS,
    ("QueryRoot", "sellingPlanGroups"): READ_PRODUCTS,
    ("ProductVariant", "sellingPlanGroups"): READ_PRODUCTS,
    ("Mutation", "fulfillmentOrderHold"): HOLD_FULFILLMENT_ORDERS,
    ("Mutation", "fulfillmentOrderReleaseHold"): RELEASE_FULFILLMENT_ORDERS,
    # tagsAdd/tagsRemove depend on the resource: checked in the resolver (write_orders for orders).
}

# What node(id) needs before it hands out an object of each type.
# GUESS: the scope for SellingPlan via node is UNCONFIRMED; read_products, like its group.
NODE_SCOPES: dict[str, tuple[str, ...]] = {
    "Order": READ_ORDERS,
    "LineItem": READ_ORDERS,
    "Return": READ_ORDERS,
    "ExchangeLineItem": READ_ORDERS,
    "FulfillmentOrder": READ_FULFILLMENT_ORDERS,
    "FulfillmentOrderLineItem": READ_FULFILLMENT_ORDERS,
    "FulfillmentHold": READ_FULFILLMENT_ORDERS,
    "Product": READ_PRODUCTS,
    "ProductVariant": READ_PRODUCTS,
    "SellingPlanGroup": READ_PRODUCTS,
    "SellingPlan": READ_PRODUCTS,
}


def effective_scopes(app: App) -> set[str]:
    """A write scope implies its read scope, as on Shopify."""
    scopes = set(app.scopes)
    scopes |= {s.replace("write_", "read_", 1) for s in app.scopes if s.startswith("write_")}
    return scopes


def access_denied(field_name: str, needed: Sequence[str]) -> GraphQLError:
    # Shape from public responses; GUESS: how Shopify words a choice of several scopes.
    required = " or ".join(f"`{s}` access scope" for s in needed)
    return GraphQLError(
        f"Access denied for {field_name} field. Required access: {required}.",
        extensions={"code": "ACCESS_DENIED", "documentation": ACCESS_SCOPES_DOC, "requiredAccess": f"{required}."},
    )


def not_modeled(type_name: str, field_name: str) -> GraphQLError:
    return GraphQLError(
        f"Field '{field_name}' on type '{type_name}' is not modeled by the sandbox",
        extensions={"code": "SANDBOX_NOT_MODELED"},
    )


# --- request context and lookups ----------------------------------------------------


@dataclass
class RequestContext:
    world: World
    app: App
    mutations: list[str] = field(default_factory=list)
    _parents: dict[str, Any] | None = None

    def require(self, field_name: str, needed: Sequence[str]) -> None:
        if not effective_scopes(self.app) & set(needed):
            raise access_denied(field_name, needed)

    @property
    def index(self) -> dict[str, Any]:
        """Every object with a global id that has no dict of its own in the world, by id."""
        if self._parents is None:
            w = self.world
            index: dict[str, Any] = {}
            for order in w.orders.values():
                for li in order.line_items:
                    index[li.id] = (li, order)
                for ret in order.returns:
                    index[ret.id] = (ret, order)
                    for ex in ret.exchange_line_items:
                        index[ex.id] = (ex, ret)
            for fo in w.fulfillment_orders.values():
                for foli in fo.line_items:
                    index[foli.id] = (foli, fo)
                for hold in fo.holds:
                    index[hold.id] = (hold, fo)
            for group in w.selling_plan_groups.values():
                for plan in group.plans:
                    index[plan.id] = (plan, group)
            for variant in w.variants.values():
                for mf in variant.metafields.values():
                    if mf.id:
                        index[mf.id] = (mf, variant)
            self._parents = index
        return self._parents

    def forget_index(self) -> None:
        self._parents = None

    def lookup(self, global_id: str) -> Any:
        w = self.world
        for table in (w.orders, w.fulfillment_orders, w.products, w.variants, w.selling_plan_groups, w.apps):
            if global_id in table:
                return table[global_id]
        hit = self.index.get(global_id)
        return hit[0] if hit else None

    def parent(self, global_id: str) -> Any:
        hit = self.index.get(global_id)
        return hit[1] if hit else None


TYPE_NAMES: dict[type, str] = {
    Order: "Order",
    LineItem: "LineItem",
    FulfillmentOrder: "FulfillmentOrder",
    FulfillmentOrderLineItem: "FulfillmentOrderLineItem",
    FulfillmentHold: "FulfillmentHold",
    Product: "Product",
    Variant: "ProductVariant",
    SellingPlanGroup: "SellingPlanGroup",
    SellingPlan: "SellingPlan",
    ShopifyReturn: "Return",
    ExchangeLineItem: "ExchangeLineItem",
    App: "App",
    Metafield: "Metafield",
}


def type_name_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("__typename")
    return TYPE_NAMES.get(type(value))


# --- connections -------------------------------------------------------------------


def encode_cursor(last_id: str, last_value: Any) -> str:
    raw = json.dumps({"last_id": gid_number(last_id), "last_value": last_value}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return data["last_value"], int(data["last_id"])
    except Exception as exc:  # any malformed cursor
        # GUESS: Shopify's wording for an unreadable cursor.
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor}") from exc


def connection(items: Iterable[Any], args: dict[str, Any],
               sort_value: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A Relay connection over ``items`` (objects with ``.id``) sorted by (sort_value, id).

    Cursors carry the last item's sort value and id, not an offset, so they stay
    valid when items are added or removed between pages, as Shopify's do.
    """
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and size > MAX_PAGE_SIZE:
            # The message is Shopify's (public reports); GUESS: no extensions code alongside it.
            raise GraphQLError(
                f"{name} cannot exceed {MAX_PAGE_SIZE}. To query larger amounts of data with fewer limits, "
                "bulk operations should be used instead."
            )
        if size is not None and size < 0:
            # GUESS: wording for a negative page size.
            raise GraphQLError(f"{name} must be greater than or equal to 0")

    def key(item: Any) -> tuple[Any, int]:
        return (sort_value(item) if sort_value else 0, gid_number(item.id))

    ordered = sorted(items, key=key, reverse=bool(args.get("reverse")))
    keys = [key(i) for i in ordered]
    reverse = bool(args.get("reverse"))

    def after(k: tuple[Any, int], bound: tuple[Any, int]) -> bool:
        try:
            return k < bound if reverse else k > bound
        except TypeError as exc:  # a cursor from another sort key
            raise GraphQLError("Invalid cursor for current pagination sort.") from exc

    lo, hi = 0, len(ordered)
    if args.get("after"):
        value, number = decode_cursor(args["after"])
        lo = next((i for i, k in enumerate(keys) if after(k, (value, number))), len(ordered))
    if args.get("before"):
        value, number = decode_cursor(args["before"])
        hi = next((i for i, k in enumerate(keys) if not after((value, number), k)), len(ordered))
        hi = max(hi, lo)
    start, end = lo, hi
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    page = ordered[start:end]
    cursors = [encode_cursor(item.id, keys[start + n][0]) for n, item in enumerate(page)]
    return {
        "edges": [{"cursor": c, "node": item} for c, item in zip(cursors, page, strict=True)],
        "nodes": page,
        "pageInfo": {
            "hasNextPage": end < len(ordered),
            "hasPreviousPage": start > 0,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


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


# --- resolvers -------------------------------------------------------------------

Resolver = Callable[..., Any]
RESOLVERS: dict[tuple[str, str], Resolver] = {}


def resolves(type_name: str, *field_names: str) -> Callable[[Resolver], Resolver]:
    def register(fn: Resolver) -> Resolver:
        for name in field_names:
            RESOLVERS[(type_name, name)] = fn
        return fn

    return register


def ctx_of(info: GraphQLResolveInfo) -> RequestContext:
    return info.context


@resolves("QueryRoot", "shop")
def _shop(_src, info, **_):
    w = ctx_of(info).world
    return {"__typename": "Shop", "id": gid("Shop", 1), "name": w.shop_name, "myshopifyDomain": w.shop_domain,
            "email": f"owner@{w.shop_domain}", "currencyCode": "USD", "ianaTimezone": "Etc/UTC"}


@resolves("QueryRoot", "currentAppInstallation")
def _installation(_src, info, **_):
    app = ctx_of(info).app
    return {
        "__typename": "AppInstallation",
        "id": gid("AppInstallation", gid_number(app.id)),
        "app": app,
        "accessScopes": [{"handle": s, "description": ""} for s in app.scopes],
    }


@resolves("QueryRoot", "order", "fulfillmentOrder", "product", "productVariant", "sellingPlanGroup", "return")
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


@resolves("QueryRoot", "node")
def _node_field(_src, info, id, **_):
    return _node(info, id)


@resolves("QueryRoot", "nodes")
def _nodes(_src, info, ids, **_):
    return [_node(info, i) for i in ids]


@resolves("QueryRoot", "orders")
def _orders(_src, info, **args):
    world = ctx_of(info).world
    try:
        matches = search.order_matcher(args.get("query"), world)
    except search.SearchSyntaxError as exc:
        raise GraphQLError(str(exc)) from exc
    items = [o for o in world.orders.values() if matches(o)]
    return connection(items, args, ORDER_SORT_VALUES.get(args.get("sortKey") or "PROCESSED_AT"))


@resolves("QueryRoot", "products")
def _products(_src, info, **args):
    return connection(ctx_of(info).world.products.values(), args)


@resolves("QueryRoot", "productVariants")
def _variants(_src, info, **args):
    return connection(ctx_of(info).world.variants.values(), args)


@resolves("QueryRoot", "sellingPlanGroups")
def _groups(_src, info, **args):
    return connection(ctx_of(info).world.selling_plan_groups.values(), args)


# Order


@resolves("Order", "legacyResourceId")
@resolves("ProductVariant", "legacyResourceId")
@resolves("Product", "legacyResourceId")
def _legacy_id(src, _info, **_):
    return str(gid_number(src.id))


# The Online Store sales channel's app id on every shop.
ONLINE_STORE_APP_NUMBER = 580111


@resolves("Order", "app")
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


@resolves("Order", "customAttributes")
def _attributes(src: Order, _info, **_):
    return [{"key": k, "value": v} for k, v in src.custom_attributes]


@resolves("Order", "lineItems")
def _order_lines(src: Order, _info, **args):
    return connection(src.line_items, args)


@resolves("Order", "fulfillmentOrders")
def _order_fos(src: Order, info, **args):
    fos = [ctx_of(info).world.fulfillment_orders[i] for i in src.fulfillment_order_ids]
    # GUESS: `displayable`/`query` arguments are not modeled; every fulfillment order is listed.
    return connection(fos, args)


@resolves("Order", "returns")
def _order_returns(src: Order, _info, **args):
    return connection(src.returns, args)


@resolves("Order", "returnStatus")
def _return_status(src: Order, _info, **_):
    return search.order_return_status(src)


@resolves("Order", "displayFulfillmentStatus")
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


@resolves("LineItem", "variant")
def _line_variant(src, info, **_):
    ctx = ctx_of(info)
    line = src if isinstance(src, LineItem) else ctx.lookup(src.line_item_id)
    return ctx.world.variants.get(line.variant_id) if line and line.variant_id else None


RESOLVERS[("FulfillmentOrderLineItem", "variant")] = _line_variant


@resolves("LineItem", "name")
def _line_name(src: LineItem, info, **_):
    variant = ctx_of(info).world.variants.get(src.variant_id or "")
    if variant and variant.title != "Default Title":
        return f"{src.title} - {variant.title}"
    return src.title


@resolves("LineItem", "currentQuantity", "unfulfilledQuantity")
def _line_quantity(src: LineItem, _info, **_):
    return src.quantity


@resolves("LineItem", "sellingPlan")
def _line_selling_plan(src: LineItem, info, **_):
    if not src.selling_plan_id:
        return None
    plan = ctx_of(info).lookup(src.selling_plan_id)
    return {"__typename": "LineItemSellingPlan", "name": plan.name if plan else "", "sellingPlanId": src.selling_plan_id}


# Products


@resolves("ProductVariant", "product")
def _variant_product(src: Variant, info, **_):
    return ctx_of(info).world.products[src.product_id]


@resolves("ProductVariant", "displayName")
def _variant_display(src: Variant, info, **_):
    return f"{ctx_of(info).world.products[src.product_id].title} - {src.title}"


@resolves("ProductVariant", "sellingPlanGroups")
def _variant_groups(src: Variant, info, **args):
    groups = [g for g in ctx_of(info).world.selling_plan_groups.values() if src.id in g.variant_ids]
    return connection(groups, args)


@resolves("ProductVariant", "metafield")
def _variant_metafield(src: Variant, _info, key, namespace=None, **_):
    if namespace is None and "." in key:
        namespace, key = key.split(".", 1)
    return src.metafields.get((namespace or "", key))


@resolves("ProductVariant", "metafields")
def _variant_metafields(src: Variant, _info, **args):
    fields = [m for m in src.metafields.values() if m.id and args.get("namespace") in (None, m.namespace)]
    return connection(fields, args)


@resolves("Product", "variants")
def _product_variants(src: Product, info, **args):
    return connection([ctx_of(info).world.variants[v] for v in src.variant_ids], args)


@resolves("Product", "sellingPlanGroups")
def _product_groups(src: Product, info, **args):
    groups = [g for g in ctx_of(info).world.selling_plan_groups.values() if g.variant_ids & set(src.variant_ids)]
    return connection(groups, args)


@resolves("SellingPlanGroup", "sellingPlans")
def _group_plans(src: SellingPlanGroup, _info, **args):
    return connection(src.plans, args)


@resolves("SellingPlanGroup", "productVariants")
def _group_variants(src: SellingPlanGroup, info, **args):
    world = ctx_of(info).world
    return connection([world.variants[v] for v in src.variant_ids if v in world.variants], args)


@resolves("SellingPlanGroup", "productVariantsCount")
def _group_variant_count(src: SellingPlanGroup, _info, **_):
    return {"__typename": "Count", "count": len(src.variant_ids), "precision": "EXACT"}


@resolves("SellingPlan", "deliveryPolicy")
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


@resolves("SellingPlan", "options")
def _plan_options(src: SellingPlan, _info, **_):
    return [src.name]


# Fulfillment orders

SUPPORTED_ACTIONS: dict[str, list[str]] = {
    # GUESS: the exact lists for a merchant-managed location; HOLD/RELEASE_HOLD follow the docs.
    "OPEN": ["CREATE_FULFILLMENT", "REPORT_PROGRESS", "MOVE", "HOLD", "SPLIT"],
    "IN_PROGRESS": ["CREATE_FULFILLMENT", "REPORT_PROGRESS", "HOLD", "MARK_AS_OPEN"],
    "ON_HOLD": ["RELEASE_HOLD", "HOLD", "MOVE"],
    "SCHEDULED": ["MARK_AS_OPEN", "HOLD"],
    "INCOMPLETE": ["CREATE_FULFILLMENT"],
    "CLOSED": [],
    "CANCELLED": [],
}


@resolves("FulfillmentOrder", "orderId")
def _fo_order_id(src: FulfillmentOrder, _info, **_):
    return src.order_id


@resolves("FulfillmentOrder", "orderName")
def _fo_order_name(src: FulfillmentOrder, info, **_):
    return ctx_of(info).world.orders[src.order_id].name


@resolves("FulfillmentOrder", "order")
def _fo_order(src: FulfillmentOrder, info, **_):
    return ctx_of(info).world.orders[src.order_id]


@resolves("FulfillmentOrder", "lineItems")
def _fo_lines(src: FulfillmentOrder, _info, **args):
    return connection(src.line_items, args)


@resolves("FulfillmentOrder", "fulfillmentHolds")
def _fo_holds(src: FulfillmentOrder, _info, **_):
    return list(src.holds)


@resolves("FulfillmentOrder", "supportedActions")
def _fo_actions(src: FulfillmentOrder, _info, **_):
    actions = list(SUPPORTED_ACTIONS.get(src.status, []))
    if src.holds and "RELEASE_HOLD" not in actions:
        actions.append("RELEASE_HOLD")
    return [{"__typename": "FulfillmentOrderSupportedAction", "action": a, "externalUrl": None} for a in actions]


@resolves("FulfillmentOrderLineItem", "lineItem")
def _foli_line(src: FulfillmentOrderLineItem, info, **_):
    return ctx_of(info).lookup(src.line_item_id)


@resolves("FulfillmentOrderLineItem", "sku", "productTitle", "variantTitle")
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


@resolves("FulfillmentHold", "displayReason")
def _hold_display(src: FulfillmentHold, _info, **_):
    # GUESS: Shopify's human wording of each reason.
    return HOLD_REASON_TEXT.get(src.reason, src.reason.replace("_", " ").capitalize())


@resolves("FulfillmentHold", "heldByRequestingApp")
def _hold_mine(src: FulfillmentHold, info, **_):
    return src.app_id is not None and src.app_id == ctx_of(info).app.id


@resolves("FulfillmentHold", "heldByApp")
def _hold_app(src: FulfillmentHold, info, **_):
    return ctx_of(info).world.apps.get(src.app_id or "")


@resolves("FulfillmentHold", "heldBy")
def _hold_by(src: FulfillmentHold, info, **_):
    app = ctx_of(info).world.apps.get(src.app_id or "")
    return app.title if app else None


@resolves("FulfillmentHold", "fulfillmentOrder")
def _hold_fo(src: FulfillmentHold, info, **_):
    return ctx_of(info).world.fulfillment_orders[src.fulfillment_order_id]


# Returns


@resolves("Return", "order")
def _return_order(src: ShopifyReturn, info, **_):
    return ctx_of(info).parent(src.id)


@resolves("Return", "exchangeLineItems")
def _return_exchanges(src: ShopifyReturn, _info, **args):
    return connection(src.exchange_line_items, args)


@resolves("Return", "totalQuantity")
def _return_quantity(src: ShopifyReturn, _info, **_):
    return sum(e.quantity for e in src.exchange_line_items)


@resolves("ExchangeLineItem", "variantId")
def _ex_variant_id(src: ExchangeLineItem, _info, **_):
    return src.variant_id


@resolves("ExchangeLineItem", "productId")
def _ex_product_id(src: ExchangeLineItem, info, **_):
    variant = ctx_of(info).world.variants.get(src.variant_id)
    return variant.product_id if variant else None


@resolves("ExchangeLineItem", "variantSku")
def _ex_sku(src: ExchangeLineItem, _info, **_):
    return src.sku


@resolves("ExchangeLineItem", "variantTitle")
def _ex_variant_title(src: ExchangeLineItem, info, **_):
    variant = ctx_of(info).world.variants.get(src.variant_id)
    return variant.title if variant else None


@resolves("ExchangeLineItem", "lineItems")
def _ex_lines(src: ExchangeLineItem, info, **_):
    line = ctx_of(info).lookup(src.line_item_id) if src.line_item_id else None
    return [line] if line else None


@resolves("ExchangeLineItem", "lineItem")
def _ex_line(src: ExchangeLineItem, info, **_):
    return ctx_of(info).lookup(src.line_item_id) if src.line_item_id else None


@resolves("ExchangeLineItem", "processedQuantity", "processableQuantity", "unprocessedQuantity")
def _ex_quantities(src: ExchangeLineItem, info, **_):
    processed = src.quantity if src.line_item_id else 0
    return {"processedQuantity": processed}.get(info.field_name, src.quantity - processed)


# --- default resolution -----------------------------------------------------------------


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def default_resolve(source: Any, info: GraphQLResolveInfo) -> Any:
    """camelCase field -> dict key or model attribute; a gap is null or a visible error."""
    name = info.field_name
    missing = object()
    if isinstance(source, dict):
        value = source.get(name, missing)
    else:
        value = getattr(source, _snake(name), missing)
    leaf = is_leaf_type(get_named_type(info.return_type))
    if value is not missing and value is not None:
        inner = value[0] if isinstance(value, list) and value else value
        is_plain = isinstance(inner, str | int | float | bool | datetime)
        # An attribute holding an id where the schema wants an object (or the reverse) is no match.
        if leaf != is_plain and not (isinstance(value, list) and not value):
            value = missing
    if value is missing:
        if is_non_null_type(info.return_type):
            raise not_modeled(info.parent_type.name, name)
        return None
    if isinstance(value, datetime):
        return iso(value)
    return value


# --- mutations -------------------------------------------------------------------------


def _user_error(fields: list[str] | None, message: str, code: str | None = None, *, coded: bool = True):
    error: dict[str, Any] = {"field": fields, "message": message}
    if coded:
        error["code"] = code
    return error


def _bump(world: World, fo: FulfillmentOrder | None, order_id: str) -> None:
    if fo is not None:
        fo.updated_at = world.now()
    world.touch_order(order_id)


HOLDABLE = {status for status, actions in SUPPORTED_ACTIONS.items() if "HOLD" in actions}
MAX_HOLDS_PER_APP = 10
MAX_HANDLE_LENGTH = 64


@resolves("Mutation", "fulfillmentOrderHold")
def _hold(_src, info, id, fulfillmentHold, **_):
    ctx = ctx_of(info)
    world, app = ctx.world, ctx.app
    ctx.mutations.append(info.field_name)
    spec = fulfillmentHold
    fo = world.fulfillment_orders.get(id)

    def failed(*errors):
        return {"fulfillmentHold": None, "fulfillmentOrder": None, "remainingFulfillmentOrder": None,
                "userErrors": list(errors)}

    if fo is None:
        return failed(_user_error(["id"], "The fulfillment order could not be found.", "FULFILLMENT_ORDER_NOT_FOUND"))
    if fo.status not in HOLDABLE:
        # GUESS: the code and wording for a CLOSED/CANCELLED/INCOMPLETE fulfillment order are
        # UNCONFIRMED; the sandbox answers with a user error without a code.
        return failed(_user_error(["id"], f"The fulfillment order's status is {fo.status} and it can't be held.",
                                  None))
    handle = spec.get("handle") or ""
    mine = [h for h in fo.holds if h.app_id == app.id]
    if len(handle) > MAX_HANDLE_LENGTH:
        # GUESS: the error for an over-long handle.
        return failed(_user_error(["fulfillmentHold", "handle"],
                                  f"Handle is too long (maximum is {MAX_HANDLE_LENGTH} characters)", None))
    if len(mine) >= MAX_HOLDS_PER_APP:
        return failed(_user_error(
            ["id"], "The maximum number of fulfillment holds for this fulfillment order has been reached for "
            "this app. An app can only have up to 10 holds on a single fulfillment order at any one time.",
            "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED"))
    if any(h.handle == handle for h in mine):
        return failed(_user_error(
            ["fulfillmentHold", "handle"],
            "The handle provided for the fulfillment hold is already in use by this app for another hold on "
            "this fulfillment order.", "DUPLICATE_FULFILLMENT_HOLD_HANDLE"))

    requested = spec.get("fulfillmentOrderLineItems") or []
    split: dict[str, int] = {}
    if requested:
        base = ["fulfillmentHold", "fulfillmentOrderLineItems"]
        if fo.holds or fo.status == "ON_HOLD":
            return failed(_user_error(base, "The fulfillment order is not in a splittable state.",
                                      "FULFILLMENT_ORDER_NOT_SPLITTABLE"))
        ids = [item["id"] for item in requested]
        if len(set(ids)) != len(ids):
            return failed(_user_error(base, "The fulfillment order line items are not unique.",
                                      "DUPLICATED_FULFILLMENT_ORDER_LINE_ITEMS"))
        by_id = {li.id: li for li in fo.line_items}
        for n, item in enumerate(requested):
            where = [*base, str(n), "quantity"]
            if item["quantity"] <= 0:
                return failed(_user_error(where, "The fulfillment order line item quantity must be greater "
                                          "than 0.", "GREATER_THAN_ZERO"))
            line = by_id.get(item["id"])
            if line is None:
                # GUESS: a line item of another fulfillment order is reported as an invalid quantity.
                return failed(_user_error([*base, str(n), "id"], "The fulfillment order line item is invalid.",
                                          "INVALID_LINE_ITEM_QUANTITY"))
            if item["quantity"] > line.remaining_quantity:
                return failed(_user_error(where, "The fulfillment order line item quantity is invalid.",
                                          "INVALID_LINE_ITEM_QUANTITY"))
            split[line.id] = item["quantity"]
        if all(split.get(li.id, 0) == li.remaining_quantity for li in fo.line_items):
            split = {}  # every item in full: the same as holding the whole fulfillment order

    remaining_fo = _split(world, fo, split) if split else None
    hold = FulfillmentHold(
        id=world.new_gid("FulfillmentHold"),
        fulfillment_order_id=fo.id,
        app_id=app.id,
        handle=handle,
        reason=spec["reason"],
        reason_notes=spec.get("reasonNotes"),
        created_at=world.now(),
    )
    if fo.status != "ON_HOLD":
        fo.status_before_hold = fo.status
        fo.status = "ON_HOLD"
    fo.holds.append(hold)
    _bump(world, fo, fo.order_id)
    ctx.forget_index()
    return {"fulfillmentHold": hold, "fulfillmentOrder": fo, "remainingFulfillmentOrder": remaining_fo,
            "userErrors": []}


def _split(world: World, fo: FulfillmentOrder, held: dict[str, int]) -> FulfillmentOrder:
    """Keep the held quantities on ``fo``; move the rest to a new fulfillment order.

    Shopify documents that the unheld items come back as ``remainingFulfillmentOrder``
    (FulfillmentOrderHoldPayload), and for ``fulfillmentOrderSplit`` that
    ``fulfillmentOrder`` is "the original fulfillment order as a result of the split"
    (FulfillmentOrderSplitResult). GUESS: a hold's split keeps the original id for the
    held items in the same way; loopsync does not depend on it (it records the id
    the payload names).
    """
    now = world.now()
    moved: list[FulfillmentOrderLineItem] = []
    kept: list[FulfillmentOrderLineItem] = []
    for line in fo.line_items:
        hold_qty = held.get(line.id, 0)
        rest = line.remaining_quantity - hold_qty
        if hold_qty:
            line.total_quantity -= rest
            line.remaining_quantity = hold_qty
            kept.append(line)
        if rest:
            moved.append(FulfillmentOrderLineItem(
                id=world.new_gid("FulfillmentOrderLineItem"), line_item_id=line.line_item_id,
                total_quantity=rest, remaining_quantity=rest))
    fo.line_items = kept
    remaining = FulfillmentOrder(
        id=world.new_gid("FulfillmentOrder"), order_id=fo.order_id, status=fo.status, line_items=moved,
        created_at=now, updated_at=now, request_status=fo.request_status)
    world.fulfillment_orders[remaining.id] = remaining
    order = world.orders[fo.order_id]
    order.fulfillment_order_ids.insert(order.fulfillment_order_ids.index(fo.id) + 1, remaining.id)
    return remaining


@resolves("Mutation", "fulfillmentOrderReleaseHold")
def _release(_src, info, id, holdIds=None, **_):
    ctx = ctx_of(info)
    world, app = ctx.world, ctx.app
    ctx.mutations.append(info.field_name)
    fo = world.fulfillment_orders.get(id)
    if fo is None:
        return {"fulfillmentOrder": None, "userErrors": [
            _user_error(["id"], "The fulfillment order wasn't found.", "FULFILLMENT_ORDER_NOT_FOUND")]}
    if holdIds is None:
        # Shopify: "If not supplied, all holds for the fulfillment order will be released."
        # GUESS: an app can only ever release its own holds, so "all" means all of this app's.
        targets = [h for h in fo.holds if h.app_id == app.id]
    else:
        targets = []
        for n, hold_id in enumerate(holdIds):
            hold = next((h for h in fo.holds if h.id == hold_id), None)
            if hold is None:
                # GUESS: a hold id that is not on this fulfillment order.
                return {"fulfillmentOrder": fo, "userErrors": [_user_error(
                    ["holdIds", str(n)], "The fulfillment hold wasn't found.", "FULFILLMENT_ORDER_NOT_FOUND")]}
            if hold.app_id != app.id:
                return {"fulfillmentOrder": fo, "userErrors": [_user_error(
                    ["holdIds", str(n)], "The app doesn't have access to release the fulfillment hold.",
                    "INVALID_ACCESS")]}
            targets.append(hold)
    if targets:
        fo.holds = [h for h in fo.holds if h not in targets]
        if not fo.holds and fo.status == "ON_HOLD":
            fo.status = fo.status_before_hold or "OPEN"
        _bump(world, fo, fo.order_id)
        ctx.forget_index()
    return {"fulfillmentOrder": fo, "userErrors": []}


def _tag_list(tags: Sequence[str]) -> list[str]:
    """Each element may itself be a comma-separated list."""
    out: list[str] = []
    for raw in tags:
        out.extend(t.strip() for t in raw.split(",") if t.strip())
    return out


@resolves("Mutation", "tagsAdd", "tagsRemove")
def _tags(_src, info, id, tags, **_):
    ctx = ctx_of(info)
    world = ctx.world
    order = world.orders.get(id)
    if order is None:
        # GUESS: wording of the not-found error; other taggable resources are not modeled.
        return {"node": None, "userErrors": [_user_error(["id"], "Resource not found", coded=False)]}
    ctx.require(info.field_name, WRITE_ORDERS)
    ctx.mutations.append(info.field_name)
    wanted = _tag_list(tags)
    before = list(order.tags)
    # GUESS: tags compare case-insensitively, keeping the spelling already on the order.
    if info.field_name == "tagsAdd":
        for tag in wanted:
            if all(t.lower() != tag.lower() for t in order.tags):
                order.tags.append(tag)
    else:
        drop = {t.lower() for t in wanted}
        order.tags = [t for t in order.tags if t.lower() not in drop]
    if order.tags != before:
        # GUESS: a no-op tag change does not touch updatedAt (Rails skips saving unchanged records).
        world.touch_order(order.id)
    return {"node": order, "userErrors": []}


# --- the endpoint --------------------------------------------------------------------------


@dataclass
class _Parsed:
    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any]
    operation_name: str | None


class ShopifyGraphQL:
    """Shopify's Admin GraphQL endpoint over a ``World``. One instance may serve many threads."""

    def __init__(self, world: World, schema: GraphQLSchema | None = None) -> None:
        self.world = world
        self.schema = schema or admin_schema()
        self.limiter = CostLimiter(world)

    # -- entry point --

    def handle(self, *, token: str | None, body: bytes, path: str = GRAPHQL_PATH
               ) -> tuple[int, dict[str, str], object]:
        status, headers, payload, operation, mutations = self._handle(token, body)
        self.world.record(LogEntry(at=self.world.now(), api="shopify", method="POST", path=path, status=status,
                                   operation=operation, mutations=mutations))
        return status, headers, payload

    def _handle(self, token: str | None, body: bytes):
        with self.world.lock:
            app = self.world.app_for_token(token) if token else None
        if app is None:
            return 401, {}, INVALID_TOKEN_BODY, None, []
        try:
            request = json.loads(body or b"")
        except (ValueError, UnicodeDecodeError):
            return 400, {}, MISSING_QUERY_BODY, None, []
        if not isinstance(request, dict) or not isinstance(request.get("query"), str) or not request["query"]:
            return 400, {}, MISSING_QUERY_BODY, None, []
        variables = request.get("variables") or {}
        operation_name = request.get("operationName") or None
        if not isinstance(variables, dict):
            # GUESS: Shopify's answer to non-object variables.
            return 400, {}, {"errors": {"variables": "Invalid variables"}}, None, []

        def answer(payload: dict[str, Any], requested: int = 0, actual: int | None = 0, op: str | None = None):
            payload.setdefault("extensions", {})["cost"] = self.limiter.cost_extension(app.id, requested, actual)
            return 200, {}, payload, op, []

        try:
            document = parse(request["query"])
        except GraphQLSyntaxError as exc:
            return answer({"errors": [syntax_error(exc)]})
        errors = validate(self.schema, document)
        if errors:
            return answer({"errors": shopify_validation_errors(document, errors)})
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            chosen = [o for o in operations if o.name and o.name.value == operation_name]
            if not chosen:
                return answer({"errors": [{"message": f'No operation named "{operation_name}"'}]})
        elif len(operations) > 1:
            return answer({"errors": [{"message": "An operation name is required"}]})
        else:
            chosen = operations
        operation = chosen[0]
        op_label = operation.name.value if operation.name else None
        coerced = get_variable_values(self.schema, operation.variable_definitions, variables)
        if isinstance(coerced, list):
            return answer({"errors": variable_errors(operation, coerced, variables)}, op=op_label)

        requested = query_cost(self.schema, document, operation_name, coerced)
        if requested > MAX_QUERY_COST:
            cost = self.limiter.cost_extension(app.id, requested, None)
            return 200, {}, max_cost_body(requested, cost), op_label, []
        if not self.limiter.try_consume(app.id, requested):
            return 200, {}, throttled_body(self.limiter.cost_extension(app.id, requested, None)), op_label, []

        ctx = RequestContext(world=self.world, app=app)
        with self.world.lock:
            result = execute(self.schema, document, context_value=ctx, variable_values=variables,
                             operation_name=operation_name, field_resolver=self._resolve,
                             type_resolver=self._resolve_type)
        actual = query_cost(self.schema, document, operation_name, coerced, result.data, actual=True)
        self.limiter.refund(app.id, max(requested - actual, 0))
        payload: dict[str, Any] = {}
        if result.errors:
            payload["errors"] = [execution_error(e) for e in result.errors]
        payload["data"] = result.data
        payload["extensions"] = {"cost": self.limiter.cost_extension(app.id, requested, actual)}
        label = op_label
        if operation.operation == OperationType.MUTATION and label is None and ctx.mutations:
            label = ",".join(ctx.mutations)
        return 200, {}, payload, label, list(ctx.mutations)

    # -- execution hooks --

    def _resolve(self, source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        key = (info.parent_type.name, info.field_name)
        needed = FIELD_SCOPES.get(key)
        if needed:
            info.context.require(info.field_name, needed)
        resolver = RESOLVERS.get(key)
        if resolver is not None:
            value = resolver(source, info, **args)
            return iso(value) if isinstance(value, datetime) else value
        return default_resolve(source, info)

    def _resolve_type(self, value: Any, info: GraphQLResolveInfo, abstract_type: Any) -> str | None:
        return type_name_of(value)
