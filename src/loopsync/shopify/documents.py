"""Every GraphQL document loopsync sends to Shopify, as named operations, in one place.

tests/test_documents_valid.py validates each one against Shopify's official
2026-10 schema, so a misspelled field fails in CI and not at a merchant.

Requested cost. Shopify refuses any single query whose *requested* cost (computed
before running it, from ``first`` arguments) exceeds 1000 points, and charges the
requested cost against the bucket up front. ``estimate_cost`` below applies
Shopify's published rules to our documents:
  scalar/enum 0 · object 1 · connection 2 + first × (1 + cost of one node) · mutation 10
  · a list of objects (no ``first``) 1 + its objects' fields, counted once.
# GUESS: the list-without-first rule and "pageInfo is included in the connection's 2"
# are our reading; Shopify does not document them. The rest is Shopify's doc.

With the nested page sizes chosen here one order costs (see ``ORDER_COST``):
  base (order, app, customAttributes)                        3
  lineItems(first: 10)          2 + 10 × 3                  32
  fulfillmentOrders(first: 3)   2 + 3 × (1 + [2 + 10 × 3] + holds 2 + actions 1)  110
  returns(first: 2)             2 + 2 × (1 + [2 + 5 × 2])   28
  = 173 per order, so a page of 4 orders requests ~694 points: well under 1000.
Orders with more items than these sizes are completed by the *_PAGE documents
(the client drains any nested connection whose pageInfo says there is more), so
small nested pages lose nothing; they only cost an extra request on big orders.
"""

from __future__ import annotations

from functools import cache

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    parse,
)

# A budget, not the limit: leaves room for our estimate being a little low.
QUERY_COST_BUDGET = 800

ORDER_LINE_ITEMS_FIRST = 10
FULFILLMENT_ORDERS_FIRST = 3
FULFILLMENT_ORDER_LINE_ITEMS_FIRST = 10
RETURNS_FIRST = 2
EXCHANGE_LINE_ITEMS_FIRST = 5

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

SELLING_PLAN_GROUPS_FIRST = 5
SELLING_PLANS_FIRST = 5

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

TAGS_ADD = """
mutation LoopsyncTagsAdd($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) {
    node { id }
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
    "LoopsyncVariantSellingPlanGroupsPage": VARIANT_SELLING_PLAN_GROUPS_PAGE,
    "LoopsyncSellingPlanGroupPlansPage": SELLING_PLAN_GROUP_PLANS_PAGE,
    "LoopsyncFulfillmentOrderHold": FULFILLMENT_ORDER_HOLD,
    "LoopsyncFulfillmentOrderReleaseHold": FULFILLMENT_ORDER_RELEASE_HOLD,
    "LoopsyncTagsAdd": TAGS_ADD,
}

# --- requested-cost estimate --------------------------------------------------

_MUTATION_COST = 10
_MULTIPLIER_ARGS = ("first", "last")


def estimate_cost(document: str, variables: dict | None = None) -> int:
    """Shopify's requested cost for ``document`` with ``variables``, by the rules above.

    ``nodes(ids:)`` counts as a connection sized by ``len(ids)``. Inline fragments
    on different types are summed, which can only over-estimate.
    """
    return _estimate(document, tuple(sorted(_multiplier_variables(variables or {}).items())))


def _multiplier_variables(variables: dict) -> dict[str, int]:
    out = {}
    for name, value in variables.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            out[name] = value
        elif isinstance(value, list):
            out[name] = len(value)
    return out


@cache
def _estimate(document: str, variables: tuple[tuple[str, int], ...]) -> int:
    ast = parse(document)
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    env = dict(variables)
    total = 0
    for definition in ast.definitions:
        if isinstance(definition, OperationDefinitionNode):
            total += _selection_cost(definition.selection_set, fragments, env)
            if definition.operation == OperationType.MUTATION:
                total += _MUTATION_COST
    return total


def _selection_cost(selection_set: SelectionSetNode | None, fragments: dict, env: dict) -> int:
    if selection_set is None:
        return 0
    cost = 0
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            cost += _selection_cost(fragments[selection.name.value].selection_set, fragments, env)
        elif isinstance(selection, InlineFragmentNode):
            cost += _selection_cost(selection.selection_set, fragments, env)
        elif isinstance(selection, FieldNode):
            cost += _field_cost(selection, fragments, env)
    return cost


def _field_cost(field: FieldNode, fragments: dict, env: dict) -> int:
    if field.selection_set is None:
        return 0  # scalars and enums are free
    size = _connection_size(field, env)
    if size is None:
        return 1 + _selection_cost(field.selection_set, fragments, env)
    per_node = 0
    for selection in field.selection_set.selections:
        if isinstance(selection, FieldNode) and selection.name.value == "pageInfo":
            continue
        if isinstance(selection, FieldNode) and selection.name.value == "edges":
            per_node += _edges_cost(selection, fragments, env)
        elif isinstance(selection, FieldNode) and selection.name.value == "nodes":
            per_node += 1 + _selection_cost(selection.selection_set, fragments, env)
        else:  # ``nodes(ids:)`` itself: its selections are the node's fields
            per_node += _selection_cost(SelectionSetNode(selections=(selection,)), fragments, env)
    if field.name.value == "nodes":
        per_node += 1
    return 2 + size * per_node


def _edges_cost(edges: FieldNode, fragments: dict, env: dict) -> int:
    cost = 0
    for selection in edges.selection_set.selections if edges.selection_set else ():
        if isinstance(selection, FieldNode) and selection.name.value == "node":
            cost += 1 + _selection_cost(selection.selection_set, fragments, env)
    return cost


def _connection_size(field: FieldNode, env: dict) -> int | None:
    for argument in field.arguments:
        name = argument.name.value
        if name in _MULTIPLIER_ARGS or (name == "ids" and field.name.value == "nodes"):
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                return env.get(value.name.value, 0)
    return None


def _order_cost() -> int:
    return estimate_cost(ORDERS_PAGE, {"first": 1}) - 2


def orders_page_size(requested: int) -> int:
    """The largest page of orders, at most ``requested``, that stays within the cost budget."""
    return max(1, min(requested, 250, (QUERY_COST_BUDGET - 2) // ORDER_COST))


def variants_batch_size() -> int:
    per_variant = estimate_cost(VARIANTS_BY_ID, {"ids": [None]}) - 2
    return max(1, min(250, (QUERY_COST_BUDGET - 2) // per_variant))


ORDER_COST = _order_cost()
