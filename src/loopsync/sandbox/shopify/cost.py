"""Shopify's calculated query cost and the per-app leaky bucket.

Cost rules (https://shopify.dev/docs/api/usage/rate-limits, "calculated query cost"):
scalars and enums cost 0, objects (and interfaces/unions) 1, a connection 2 plus
``first``/``last`` times the cost of one of its nodes, a mutation field 10.
The requested cost is computed from the document before running it; the actual
cost replaces the page sizes with what came back. Shopify deducts the requested
cost up front, refunds the difference afterwards, and refuses a query whose
requested cost is over 1000 or over what the bucket holds.
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

    def _fields(self, selection_set: SelectionSetNode | None, seen: frozenset[str] = frozenset()
                ) -> dict[str, list[FieldNode]]:
        """Fields by response key, merged across fragments (a GUESS for abstract types: no
        per-type maximum, every fragment's fields count)."""
        out: dict[str, list[FieldNode]] = {}
        if selection_set is None:
            return out
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                out.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                for key, nodes in self._fields(selection.selection_set, seen).items():
                    out.setdefault(key, []).extend(nodes)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:
                    for key, nodes in self._fields(fragment.selection_set, seen | {name}).items():
                        out.setdefault(key, []).extend(nodes)
        return out

    def _field_def(self, parent: Any, name: str):
        fields = getattr(parent, "fields", None)
        return None if fields is None else fields.get(name)

    def _merged(self, nodes: list[FieldNode]) -> SelectionSetNode | None:
        selections = [s for n in nodes if n.selection_set for s in n.selection_set.selections]
        return SelectionSetNode(selections=tuple(selections)) if selections else None

    def selection_cost(self, parent: Any, selection_set: SelectionSetNode | None, data: Any,
                       actual: bool) -> int:
        total = 0
        for key, nodes in self._fields(selection_set).items():
            name = nodes[0].name.value
            if name.startswith("__"):
                continue
            field = self._field_def(parent, name)
            if field is None:
                continue
            value = data.get(key) if isinstance(data, dict) else None
            total += self.field_cost(field, nodes, value, actual)
        return total

    def _object_cost(self, type_: GraphQLOutputType, sub: SelectionSetNode | None, value: Any,
                     actual: bool) -> int:
        named = get_named_type(type_)
        if actual and value is None:
            return 0  # GUESS: a null object costs nothing once it is known to be null
        if _unwrap_list(type_):
            # GUESS: a plain list of objects costs like one object (Shopify prices lists per field).
            items = value if actual and isinstance(value, list) else [None]
            worst = max((self.selection_cost(named, sub, item, actual) for item in items), default=0)
            return 1 + worst
        return 1 + self.selection_cost(named, sub, value, actual)

    def field_cost(self, field, nodes: list[FieldNode], value: Any, actual: bool) -> int:
        type_ = field.type
        if is_leaf_type(get_named_type(type_)):
            return 0
        sub = self._merged(nodes)
        if not _is_connection(type_):
            return self._object_cost(type_, sub, value, actual)
        if actual and value is None:
            return 0
        connection = get_named_type(type_)
        size = 1
        if not actual:
            try:
                args = get_argument_values(field, nodes[0], self.variables)
            except Exception:  # invalid arguments are reported by execution, not here
                args = {}
            size = int(args.get("first") or args.get("last") or 0)
        best = 0
        for key, fnodes in self._fields(sub).items():
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
        count = sum(
            1 for nodes in coster._fields(operation.selection_set).values()
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
