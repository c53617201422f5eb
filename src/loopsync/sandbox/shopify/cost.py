"""Shopify's calculated query cost and the per-app leaky bucket, as Shopify documents them.

What Shopify documents (sources below), and how this calculator follows it:

* Every field has a cost; by default a scalar or enum costs 0, an object 1, an
  interface or union "the maximum of possible selections" (shopify.dev,
  https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, "Cost
  calculation"). So a fragment counts only for the type it names, and an abstract
  field costs what its most expensive concrete type would.
* A connection costs 2 plus, for every object ``first``/``last`` asks for, that
  object's cost: nested connections multiply (Shopify Engineering, "Rate Limiting
  GraphQL APIs by Calculating Query Complexity",
  https://shopify.engineering/rate-limiting-graphql-apis-calculating-query-complexity;
  ``pageInfo`` and ``cursor`` are part of the 2).
* A mutation field costs 10 (same page; api-facts "Single query cost limit").
  Standard mutations answer ``requestedQueryCost: 10`` whatever they select.
* The *requested* cost is computed from the document before it runs and must be
  in the bucket (else THROTTLED) and at most 1000 (else MAX_COST_EXCEEDED); the
  *actual* cost replaces every page size with what came back, and Shopify refunds
  requested minus actual afterwards (shopify.dev rate-limits page, "requested and
  actual cost"; https://shopify.dev/docs/api/usage/limits).

Undocumented, so guessed:
# GUESS: a plain list of objects (``fulfillmentHolds``, ``customAttributes``) costs like one
# object: Shopify sizes only connections.
# GUESS: ``nodes(ids:)`` costs one node per id (no connection 2): it returns one object per
# id, and Shopify has acknowledged cost bugs around ``nodes`` (lightward/mechanic-tasks#110),
# so pricing it like a one-object list would let a client ask for 250 full orders at once.
# Observed oddity, not modelled: community.shopify.dev thread 23101 reports a requested
# cost of 25 for ``variants(first: 250)`` on a product that was null; Shopify may cap a
# connection's size by what the parent can hold. Charging the documented rule can only
# make this sandbox stricter than Shopify, never laxer.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
)
from graphql.execution.values import get_argument_values
from graphql.type.definition import GraphQLOutputType

from loopsync.sandbox.world import World

MAX_QUERY_COST = 1000
MUTATION_COST = 10
CONNECTION_COST = 2
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"


def _is_connection(type_: GraphQLOutputType) -> bool:
    named = get_named_type(type_)
    return isinstance(named, GraphQLObjectType) and named.name.endswith("Connection") and "pageInfo" in named.fields


def _unwrap_list(type_: GraphQLOutputType) -> bool:
    if is_non_null_type(type_):
        type_ = type_.of_type  # type: ignore[union-attr]
    return is_list_type(type_)


class _Coster:
    """Walks an operation; with ``data`` it prices what came back, without it what was asked."""

    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode],
                 variables: dict[str, Any]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def _applies(self, condition: str | None, runtime: Any) -> bool:
        """Whether a fragment on ``condition`` is selected when the object is a ``runtime``."""
        if condition is None or condition == runtime.name:
            return True
        named = self.schema.get_type(condition)
        return named is not None and is_abstract_type(named) and not is_abstract_type(runtime) \
            and self.schema.is_sub_type(named, runtime)

    def _conditions(self, selection_set: SelectionSetNode | None, seen: frozenset[str] = frozenset()) -> set[str]:
        """The type names the fragments in ``selection_set`` are on."""
        out: set[str] = set()
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, InlineFragmentNode):
                if selection.type_condition is not None:
                    out.add(selection.type_condition.name.value)
                out |= self._conditions(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None and selection.name.value not in seen:
                    out.add(fragment.type_condition.name.value)
                    out |= self._conditions(fragment.selection_set, seen | {selection.name.value})
        return out

    def _fields(self, selection_set: SelectionSetNode | None, runtime: Any,
                seen: frozenset[str] = frozenset()) -> dict[str, list[FieldNode]]:
        """Fields by response key that an object of type ``runtime`` is asked for."""
        out: dict[str, list[FieldNode]] = {}
        if selection_set is None:
            return out
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                out.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition.name.value if selection.type_condition else None
                if self._applies(condition, runtime):
                    for key, nodes in self._fields(selection.selection_set, runtime, seen).items():
                        out.setdefault(key, []).extend(nodes)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen and self._applies(fragment.type_condition.name.value, runtime):
                    for key, nodes in self._fields(fragment.selection_set, runtime, seen | {name}).items():
                        out.setdefault(key, []).extend(nodes)
        return out

    def _runtimes(self, parent: Any, selection_set: SelectionSetNode | None) -> list[Any]:
        """The types whose selections can differ: an abstract type's fragments' types, and itself."""
        if not is_abstract_type(parent):
            return [parent]
        named = [self.schema.get_type(name) for name in sorted(self._conditions(selection_set))]
        return [parent] + [t for t in named if t is not None and not is_abstract_type(t)
                           and self.schema.is_sub_type(parent, t)]

    def _merged(self, nodes: list[FieldNode]) -> SelectionSetNode | None:
        selections = [s for n in nodes if n.selection_set for s in n.selection_set.selections]
        return SelectionSetNode(selections=tuple(selections)) if selections else None

    def selection_cost(self, parent: Any, selection_set: SelectionSetNode | None, data: Any,
                       actual: bool) -> int:
        """The dearest of what each possible type of ``parent`` would cost (Shopify's interface rule)."""
        return max(self._cost_as(runtime, selection_set, data, actual)
                   for runtime in self._runtimes(parent, selection_set))

    def _cost_as(self, runtime: Any, selection_set: SelectionSetNode | None, data: Any, actual: bool) -> int:
        total = 0
        fields = getattr(runtime, "fields", None) or {}
        for key, nodes in self._fields(selection_set, runtime).items():
            name = nodes[0].name.value
            field = fields.get(name)
            if name.startswith("__") or field is None:
                continue
            value = data.get(key) if isinstance(data, dict) else None
            total += self.field_cost(field, nodes, value, actual)
        return total

    def _object_cost(self, field, nodes: list[FieldNode], sub: SelectionSetNode | None, value: Any,
                     actual: bool) -> int:
        type_ = field.type
        named = get_named_type(type_)
        if actual and value is None:
            return 0  # GUESS: a null object costs nothing once it is known to be null
        if not _unwrap_list(type_):
            return 1 + self.selection_cost(named, sub, value, actual)
        ids = self._arguments(field, nodes).get("ids") if nodes[0].name.value == "nodes" else None
        if isinstance(ids, list):  # ``nodes(ids:)``: one node per id (see the GUESS above)
            items = value if actual and isinstance(value, list) else [None] * len(ids)
            return sum(1 + self.selection_cost(named, sub, item, actual)
                       for item in items if not (actual and item is None))
        items = value if actual and isinstance(value, list) else [None]
        worst = max((self.selection_cost(named, sub, item, actual) for item in items), default=0)
        return 1 + worst

    def _arguments(self, field, nodes: list[FieldNode]) -> dict[str, Any]:
        try:
            return get_argument_values(field, nodes[0], self.variables)
        except Exception:  # invalid arguments are reported by execution, not here
            return {}

    def field_cost(self, field, nodes: list[FieldNode], value: Any, actual: bool) -> int:
        type_ = field.type
        if is_leaf_type(get_named_type(type_)):
            return 0
        sub = self._merged(nodes)
        if not _is_connection(type_):
            return self._object_cost(field, nodes, sub, value, actual)
        if actual and value is None:
            return 0
        connection = get_named_type(type_)
        size = 1
        if not actual:
            args = self._arguments(field, nodes)
            size = int(args.get("first") or args.get("last") or 0)
        best = 0
        for key, fnodes in self._fields(sub, connection).items():
            name = fnodes[0].name.value
            if name not in ("edges", "nodes") or name not in connection.fields:
                continue
            item_type = get_named_type(connection.fields[name].type)
            merged = self._merged(fnodes)
            items = (value.get(key) or []) if actual and isinstance(value, dict) else [None]
            if name == "nodes":
                spent = sum(1 + self.selection_cost(item_type, merged, item, actual) for item in items)
            else:  # an edge is free; its node costs like any object
                spent = sum(self.selection_cost(item_type, merged, item, actual) for item in items)
            best = max(best, spent)
        return CONNECTION_COST + size * best


def _operation_parts(document, operation_name: str | None):
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return (operations[0] if operations else None), fragments


def query_cost(schema: GraphQLSchema, document, operation_name: str | None, variables: dict[str, Any],
               data: Any = None, *, actual: bool = False) -> int:
    """Requested cost (``actual=False``) or actual cost from the response ``data``."""
    operation, fragments = _operation_parts(document, operation_name)
    if operation is None:
        return 0
    coster = _Coster(schema, fragments, variables)
    if operation.operation == OperationType.MUTATION:
        root = schema.mutation_type
        count = sum(
            1 for nodes in coster._fields(operation.selection_set, root).values()
            if not nodes[0].name.value.startswith("__")
        )
        return MUTATION_COST * count
    root = schema.query_type if operation.operation == OperationType.QUERY else schema.subscription_type
    if actual:
        # The split per connection page: a page that came back shorter costs less.
        return coster.selection_cost(root, operation.selection_set, data or {}, True)
    return coster.selection_cost(root, operation.selection_set, None, False)


# --- the bucket ----------------------------------------------------------------


class CostLimiter:
    """One leaky bucket per app, stored on the world so every request handler shares it.

    The bucket refills from ``world.clock()``: real time for a live world, and only
    ``world.advance()`` for a world with a frozen clock, so tests are deterministic.
    """

    def __init__(self, world: World) -> None:
        self.world = world

    def _current(self, app_id: str) -> float:
        now = self.world.clock()
        available, at = self.world.cost_buckets.get(app_id, (self.world.bucket_size, now))
        elapsed = max((now - at).total_seconds(), 0.0)
        available = min(self.world.bucket_size, available + elapsed * self.world.restore_rate)
        self.world.cost_buckets[app_id] = (available, now)
        return available

    def available(self, app_id: str) -> float:
        with self.world.lock:
            return self._current(app_id)

    def try_consume(self, app_id: str, amount: float) -> bool:
        with self.world.lock:
            available = self._current(app_id)
            if amount > available:
                return False
            self.world.cost_buckets[app_id] = (available - amount, self.world.cost_buckets[app_id][1])
            return True

    def refund(self, app_id: str, amount: float) -> None:
        with self.world.lock:
            available = self._current(app_id)
            self.world.cost_buckets[app_id] = (
                min(self.world.bucket_size, available + amount), self.world.cost_buckets[app_id][1]
            )

    def cost_extension(self, app_id: str, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": float(self.world.bucket_size),
                # GUESS: Shopify shows whole points here.
                "currentlyAvailable": int(self.available(app_id)),
                "restoreRate": float(self.world.restore_rate),
            },
        }


def throttled_body(cost: dict[str, Any]) -> dict[str, Any]:
    return {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
            }
        ],
        "extensions": {"cost": cost},
    }


def max_cost_body(requested: int, cost: dict[str, Any]) -> dict[str, Any]:
    message = (
        f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\n"
        "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
        "cost of a query is calculated.\n\n"
        "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
        "See https://shopify.dev/api/usage/bulk-operations/queries for usage details.\n"
    )
    return {
        "errors": [
            {
                "message": message,
                # GUESS: extension keys besides the code.
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST},
            }
        ],
        "extensions": {"cost": cost},
    }
