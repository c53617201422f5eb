"""Shopify's requested cost for loopsync's documents, computed before sending them.

Shopify refuses any single query whose *requested* cost (computed before running
it, from ``first`` arguments) exceeds 1000 points, and runs a query only once the
bucket holds its requested cost; afterwards it refunds requested minus *actual*
(the cost with page sizes replaced by what came back). Every response reports
both, and the bucket, in ``extensions.cost``; the transport paces on those
figures. This estimate exists only to size pages and batches under the
1000-point limit before the first answer arrives.

The rules, with their sources (the sandbox's calculator, ``sandbox/shopify/cost.py``,
applies the same ones to charge us):
  scalar/enum 0 · object 1 · interface/union: its dearest possible selection
      (shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, "Cost calculation")
  connection 2 + first × (1 + cost of one node's fields): nested connections multiply
      (Shopify Engineering, "Rate Limiting GraphQL APIs by Calculating Query Complexity")
  mutation field 10 (same pages; a standard mutation answers requestedQueryCost 10
      whatever it selects)
# GUESS: a list of objects without ``first`` costs 1 + its objects' fields, counted once;
# ``nodes(ids:)`` costs one node per id, without a connection's 2; pageInfo is part of
# the connection's 2. Shopify does not document these; the sandbox charges the same.
# Inline fragments on different types are summed where Shopify takes the dearest: our
# documents use one type per field, so the two agree.

With the nested page sizes chosen in ``documents`` one order costs (see ``ORDER_COST``):
  base (order, app, customAttributes)                         3
  lineItems(first: 5)           2 + 5 × 3                    17
  fulfillmentOrders(first: 2)   2 + 2 × (1 + [2 + 5 × 3] + holds 2 + actions 1)   44
  returns(first: 1)             2 + 1 × (1 + [2 + 3 × 2])     11
  = 75 per order, so a page of 10 orders requests 752 points and 10 orders by id 750.
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

from loopsync.shopify import documents

# A budget under Shopify's 1000: room for a field whose cost Shopify raises later.
QUERY_COST_BUDGET = 800

_MUTATION_COST = 10
_MULTIPLIER_ARGS = ("first", "last")


def estimate_cost(document: str, variables: dict | None = None) -> int:
    """Shopify's requested cost for ``document`` with ``variables``, by the rules above.

    ``nodes(ids:)`` counts one node per id. Inline fragments on different types are
    summed, which can only over-estimate.
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
            if definition.operation == OperationType.MUTATION:
                # Each mutation field costs 10; what it selects adds nothing.
                total += _MUTATION_COST * sum(
                    1 for s in definition.selection_set.selections if isinstance(s, FieldNode)
                )
            else:
                total += _selection_cost(definition.selection_set, fragments, env)
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
        return size * (1 + per_node)
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
    return estimate_cost(documents.ORDERS_PAGE, {"first": 1}) - 2


def orders_page_size(requested: int) -> int:
    """The largest page of orders, at most ``requested``, that stays within the cost budget."""
    return max(1, min(requested, 250, (QUERY_COST_BUDGET - 2) // ORDER_COST))


def variants_batch_size() -> int:
    per_variant = estimate_cost(documents.VARIANTS_BY_ID, {"ids": [None]})
    return max(1, min(250, QUERY_COST_BUDGET // per_variant))


def variant_group_ids_batch_size() -> int:
    per_variant = estimate_cost(documents.VARIANT_GROUP_IDS, {"ids": [None]})
    return max(1, min(250, QUERY_COST_BUDGET // per_variant))


ORDER_COST = _order_cost()
