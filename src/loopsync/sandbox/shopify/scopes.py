"""Which access scope each field and node type needs, and how Shopify refuses a request without it."""

from __future__ import annotations

from collections.abc import Sequence

from graphql import GraphQLError

from loopsync.sandbox.world import App

ACCESS_SCOPES_DOC = "https://shopify.dev/api/usage/access-scopes"

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
