"""Every GraphQL document loopsync sends to Shopify, as named operations, in one place.

tests/test_documents_valid.py validates each one against Shopify's official
2026-10 schema, so a misspelled field fails in CI and not at a merchant.

The nested page sizes below (``*_FIRST``) are sized from what the orders loopsync
reads in full really carry, because Shopify charges (and makes a query wait for)
the *requested* cost, computed from these sizes, and refunds only afterwards: a
Loop exchange order has one or two line items in one fulfillment order (two once
a hold on some lines splits it), and at most one return. ``cost`` computes what
each document requests. Orders with more items than these sizes are completed
by the *_PAGE documents (the client drains any nested connection whose pageInfo
says there is more), so small nested pages lose nothing; they only cost an
extra request on big orders.
"""

from __future__ import annotations

ORDER_LINE_ITEMS_FIRST = 5
FULFILLMENT_ORDERS_FIRST = 2
FULFILLMENT_ORDER_LINE_ITEMS_FIRST = 5
RETURNS_FIRST = 1
EXCHANGE_LINE_ITEMS_FIRST = 3

_LINE_ITEM_FIELDS = """
fragment LoopsyncLineItem on LineItem {
  id sku title quantity
  variant { id }
  sellingPlan { name sellingPlanId }
}
"""

_FULFILLMENT_ORDER_LINE_FIELDS = """
fragment LoopsyncFulfillmentOrderLine on FulfillmentOrderLineItem {
  id remainingQuantity totalQuantity sku
  lineItem { id }
  variant { id }
}
"""

_FULFILLMENT_ORDER_FIELDS = f"""
fragment LoopsyncFulfillmentOrder on FulfillmentOrder {{
  id status
  lineItems(first: {FULFILLMENT_ORDER_LINE_ITEMS_FIRST}) {{
    nodes {{ ...LoopsyncFulfillmentOrderLine }}
    pageInfo {{ hasNextPage endCursor }}
  }}
  fulfillmentHolds {{
    id handle reason reasonNotes heldByRequestingApp
    heldByApp {{ title }}
  }}
  supportedActions {{ action }}
}}
{_FULFILLMENT_ORDER_LINE_FIELDS}
"""

_RETURN_FIELDS = f"""
fragment LoopsyncReturn on Return {{
  id
  exchangeLineItems(first: {EXCHANGE_LINE_ITEMS_FIRST}) {{
    nodes {{ lineItems {{ id }} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

_ORDER_FIELDS = f"""
fragment LoopsyncOrder on Order {{
  id legacyResourceId name createdAt updatedAt tags sourceName closed cancelledAt
  app {{ name }}
  customAttributes {{ key value }}
  lineItems(first: {ORDER_LINE_ITEMS_FIRST}) {{
    nodes {{ ...LoopsyncLineItem }}
    pageInfo {{ hasNextPage endCursor }}
  }}
  fulfillmentOrders(first: {FULFILLMENT_ORDERS_FIRST}) {{
    nodes {{ ...LoopsyncFulfillmentOrder }}
    pageInfo {{ hasNextPage endCursor }}
  }}
  returns(first: {RETURNS_FIRST}) {{
    nodes {{ ...LoopsyncReturn }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
{_LINE_ITEM_FIELDS}
{_FULFILLMENT_ORDER_FIELDS}
{_RETURN_FIELDS}
"""

# --- reads --------------------------------------------------------------------

GRANTED_SCOPES = """
query LoopsyncGrantedScopes {
  currentAppInstallation { accessScopes { handle } }
}
"""

SHOP_INFO = """
query LoopsyncShopInfo {
  shop { name myshopifyDomain }
}
"""

ORDERS_PAGE = (
    """
query LoopsyncOrdersPage($first: Int!, $after: String, $query: String, $sortKey: OrderSortKeys) {
  orders(first: $first, after: $after, query: $query, sortKey: $sortKey) {
    nodes { ...LoopsyncOrder }
    pageInfo { hasNextPage endCursor }
  }
}
"""
    + _ORDER_FIELDS
)

# The scan's first pass: just enough to recognise a Loop exchange (name, tags)
# and advance the cursor (updatedAt). One point per order, so a full page of
# 250 costs 252 points where a page of full orders holds only 4. Only the
# exchanges found here are then read in full with ORDERS_BY_ID.
ORDER_SUMMARIES_PAGE = """
query LoopsyncOrderSummariesPage($first: Int!, $after: String, $query: String, $sortKey: OrderSortKeys) {
  orders(first: $first, after: $after, query: $query, sortKey: $sortKey) {
    nodes { id name tags updatedAt }
    pageInfo { hasNextPage endCursor }
  }
}
"""

ORDERS_BY_ID = (
    """
query LoopsyncOrdersById($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Order { ...LoopsyncOrder } }
}
"""
    + _ORDER_FIELDS
)

# The *_PAGE documents below complete an order whose nested connections were cut
# short by the small page sizes above.

ORDER_LINE_ITEMS_PAGE = (
    """
query LoopsyncOrderLineItemsPage($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: 100, after: $after) {
      nodes { ...LoopsyncLineItem }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
    + _LINE_ITEM_FIELDS
)

ORDER_FULFILLMENT_ORDERS_PAGE = (
    """
query LoopsyncOrderFulfillmentOrdersPage($id: ID!, $after: String) {
  order(id: $id) {
    fulfillmentOrders(first: 10, after: $after) {
      nodes { ...LoopsyncFulfillmentOrder }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
    + _FULFILLMENT_ORDER_FIELDS
)

FULFILLMENT_ORDER_LINE_ITEMS_PAGE = (
    """
query LoopsyncFulfillmentOrderLineItemsPage($id: ID!, $after: String) {
  fulfillmentOrder(id: $id) {
    lineItems(first: 100, after: $after) {
      nodes { ...LoopsyncFulfillmentOrderLine }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
    + _FULFILLMENT_ORDER_LINE_FIELDS
)

ORDER_RETURNS_PAGE = (
    """
query LoopsyncOrderReturnsPage($id: ID!, $after: String) {
  order(id: $id) {
    returns(first: 10, after: $after) {
      nodes { ...LoopsyncReturn }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
    + _RETURN_FIELDS
)

RETURN_EXCHANGE_LINE_ITEMS_PAGE = """
query LoopsyncReturnExchangeLineItemsPage($id: ID!, $after: String) {
  return(id: $id) {
    exchangeLineItems(first: 100, after: $after) {
      nodes { lineItems { id } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

_SELLING_PLAN_FIELDS = """
fragment LoopsyncSellingPlan on SellingPlan {
  id name category description
  deliveryPolicy {
    ... on SellingPlanFixedDeliveryPolicy { fulfillmentTrigger fulfillmentExactTime }
  }
}
"""

SELLING_PLAN_GROUPS_FIRST = 2
SELLING_PLANS_FIRST = 2

VARIANTS_BY_ID = f"""
query LoopsyncVariantsById($ids: [ID!]!, $namespace: String!, $key: String!) {{
  nodes(ids: $ids) {{
    ... on ProductVariant {{
      id sku title
      metafield(namespace: $namespace, key: $key) {{ value }}
      sellingPlanGroups(first: {SELLING_PLAN_GROUPS_FIRST}) {{
        nodes {{
          id
          sellingPlans(first: {SELLING_PLANS_FIRST}) {{
            nodes {{ ...LoopsyncSellingPlan }}
            pageInfo {{ hasNextPage endCursor }}
          }}
        }}
        pageInfo {{ hasNextPage endCursor }}
      }}
    }}
  }}
}}
{_SELLING_PLAN_FIELDS}
"""

# The idle scan's check on variants loopsync holds orders for: which selling plan groups each
# is in, nothing more (about 4 points a variant where VARIANTS_BY_ID costs about 8). A
# variant whose group ids are what the last full read saw keeps that read's verdict;
# any other is read in full (see reconcile.candidates). A pre-order variant is in one
# group (rarely two); more says "changed", and the full read drains them.
VARIANT_GROUP_IDS = f"""
query LoopsyncVariantGroupIds($ids: [ID!]!) {{
  nodes(ids: $ids) {{
    ... on ProductVariant {{
      id
      sellingPlanGroups(first: {SELLING_PLAN_GROUPS_FIRST}) {{
        nodes {{ id }}
        pageInfo {{ hasNextPage }}
      }}
    }}
  }}
}}
"""

VARIANT_SELLING_PLAN_GROUPS_PAGE = f"""
query LoopsyncVariantSellingPlanGroupsPage($id: ID!, $after: String) {{
  productVariant(id: $id) {{
    sellingPlanGroups(first: 25, after: $after) {{
      nodes {{
        id
        sellingPlans(first: {SELLING_PLANS_FIRST}) {{
          nodes {{ ...LoopsyncSellingPlan }}
          pageInfo {{ hasNextPage endCursor }}
        }}
      }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
{_SELLING_PLAN_FIELDS}
"""

SELLING_PLAN_GROUP_PLANS_PAGE = f"""
query LoopsyncSellingPlanGroupPlansPage($id: ID!, $after: String) {{
  sellingPlanGroup(id: $id) {{
    sellingPlans(first: 100, after: $after) {{
      nodes {{ ...LoopsyncSellingPlan }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}
{_SELLING_PLAN_FIELDS}
"""

# --- writes -------------------------------------------------------------------

FULFILLMENT_ORDER_HOLD = """
mutation LoopsyncFulfillmentOrderHold($id: ID!, $fulfillmentHold: FulfillmentOrderHoldInput!) {
  fulfillmentOrderHold(id: $id, fulfillmentHold: $fulfillmentHold) {
    fulfillmentHold {
      id handle reason reasonNotes heldByRequestingApp
      heldByApp { title }
    }
    fulfillmentOrder { id }
    remainingFulfillmentOrder { id }
    userErrors { field message code }
  }
}
"""

FULFILLMENT_ORDER_RELEASE_HOLD = """
mutation LoopsyncFulfillmentOrderReleaseHold($id: ID!, $holdIds: [ID!]!) {
  fulfillmentOrderReleaseHold(id: $id, holdIds: $holdIds) {
    fulfillmentOrder { id }
    userErrors { field message code }
  }
}
"""

# `loopsync serve`: fulfillment_holds/* and fulfillment_orders/* deliveries name a fulfillment
# order; the worker reconciles the order it belongs to.
FULFILLMENT_ORDER_ORDER = """
query LoopsyncFulfillmentOrderOrder($id: ID!) {
  fulfillmentOrder(id: $id) { id order { id } }
}
"""

TAGS_ADD = """
mutation LoopsyncTagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) {
    node { id }
    userErrors { field message }
  }
}
"""

# --- webhook subscriptions (loopsync webhooks install | list | uninstall) --------

_WEBHOOK_SUBSCRIPTION_FIELDS = """
fragment LoopsyncWebhookSubscription on WebhookSubscription {
  id topic uri format createdAt
}
"""

WEBHOOK_SUBSCRIPTIONS_PAGE = f"""
query LoopsyncWebhookSubscriptionsPage($first: Int!, $after: String, $topics: [WebhookSubscriptionTopic!], $uri: String) {{
  webhookSubscriptions(first: $first, after: $after, topics: $topics, uri: $uri) {{
    nodes {{ ...LoopsyncWebhookSubscription }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
{_WEBHOOK_SUBSCRIPTION_FIELDS}
"""

WEBHOOK_SUBSCRIPTION_CREATE = f"""
mutation LoopsyncWebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $uri: String!) {{
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {{uri: $uri, format: JSON}}) {{
    webhookSubscription {{ ...LoopsyncWebhookSubscription }}
    userErrors {{ field message }}
  }}
}}
{_WEBHOOK_SUBSCRIPTION_FIELDS}
"""

WEBHOOK_SUBSCRIPTION_DELETE = """
mutation LoopsyncWebhookSubscriptionDelete($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors { field message }
  }
}
"""

ALL_DOCUMENTS: dict[str, str] = {
    "LoopsyncGrantedScopes": GRANTED_SCOPES,
    "LoopsyncShopInfo": SHOP_INFO,
    "LoopsyncOrdersPage": ORDERS_PAGE,
    "LoopsyncOrderSummariesPage": ORDER_SUMMARIES_PAGE,
    "LoopsyncOrdersById": ORDERS_BY_ID,
    "LoopsyncOrderLineItemsPage": ORDER_LINE_ITEMS_PAGE,
    "LoopsyncOrderFulfillmentOrdersPage": ORDER_FULFILLMENT_ORDERS_PAGE,
    "LoopsyncFulfillmentOrderLineItemsPage": FULFILLMENT_ORDER_LINE_ITEMS_PAGE,
    "LoopsyncOrderReturnsPage": ORDER_RETURNS_PAGE,
    "LoopsyncReturnExchangeLineItemsPage": RETURN_EXCHANGE_LINE_ITEMS_PAGE,
    "LoopsyncVariantsById": VARIANTS_BY_ID,
    "LoopsyncVariantGroupIds": VARIANT_GROUP_IDS,
    "LoopsyncVariantSellingPlanGroupsPage": VARIANT_SELLING_PLAN_GROUPS_PAGE,
    "LoopsyncSellingPlanGroupPlansPage": SELLING_PLAN_GROUP_PLANS_PAGE,
    "LoopsyncFulfillmentOrderHold": FULFILLMENT_ORDER_HOLD,
    "LoopsyncFulfillmentOrderReleaseHold": FULFILLMENT_ORDER_RELEASE_HOLD,
    "LoopsyncTagsAdd": TAGS_ADD,
    "LoopsyncWebhookSubscriptionsPage": WEBHOOK_SUBSCRIPTIONS_PAGE,
    "LoopsyncWebhookSubscriptionCreate": WEBHOOK_SUBSCRIPTION_CREATE,
    "LoopsyncWebhookSubscriptionDelete": WEBHOOK_SUBSCRIPTION_DELETE,
    "LoopsyncFulfillmentOrderOrder": FULFILLMENT_ORDER_ORDER,
}
