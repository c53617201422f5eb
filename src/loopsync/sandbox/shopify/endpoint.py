"""Shopify's Admin GraphQL endpoint over a ``World``.

``ShopifyGraphQL.handle`` takes the access token and raw request body and returns
(HTTP status, extra headers, JSON body) the way Shopify answers: 401 for a bad
token, Shopify-style validation errors, ACCESS_DENIED for missing scopes,
calculated query cost with a per-app leaky bucket, and the resolvers of
``resolvers`` and ``mutations`` over the ``World``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
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
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from loopsync.sandbox.shopify.context import RequestContext, type_name_of
from loopsync.sandbox.shopify.cost import (
    MAX_QUERY_COST,
    CostLimiter,
    max_cost_body,
    query_cost,
    throttled_body,
)
from loopsync.sandbox.shopify.errors import (
    execution_error,
    shopify_validation_errors,
    syntax_error,
    variable_errors,
)
from loopsync.sandbox.shopify.mutations import MUTATIONS
from loopsync.sandbox.shopify.registry import Resolver, default_resolve
from loopsync.sandbox.shopify.resolvers import QUERIES
from loopsync.sandbox.shopify.scopes import FIELD_SCOPES
from loopsync.sandbox.world import App, LogEntry, World, iso
from loopsync.schema import API_VERSION, admin_schema

INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
# GUESS: a body that is not JSON loses its params in Rails, so Shopify reports the query as missing.
MISSING_QUERY_BODY = {"errors": {"query": "Required parameter missing or invalid"}}
GRAPHQL_PATH = f"/admin/api/{API_VERSION}/graphql.json"
RESOLVERS: dict[tuple[str, str], Resolver] = {**QUERIES, **MUTATIONS}

# (HTTP status, headers, body, operation label for the request log, mutation fields run)
_Answer = tuple[int, dict[str, str], Any, str | None, list[str]]


@dataclass(frozen=True)
class _Request:
    query: str
    variables: dict[str, Any]
    operation_name: str | None


def _read_body(body: bytes) -> _Request | dict[str, Any]:
    """The request, or the body of Shopify's 400 answer to one it cannot read."""
    try:
        request = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return MISSING_QUERY_BODY
    if not isinstance(request, dict) or not isinstance(request.get("query"), str) or not request["query"]:
        return MISSING_QUERY_BODY
    variables = request.get("variables") or {}
    if not isinstance(variables, dict):
        # GUESS: Shopify's answer to non-object variables.
        return {"errors": {"variables": "Invalid variables"}}
    return _Request(request["query"], variables, request.get("operationName") or None)


@lru_cache(maxsize=256)
def _checked(schema: GraphQLSchema, query: str) -> tuple[DocumentNode, tuple[GraphQLError, ...]]:
    """The parsed document and its validation errors, once per query text and schema.

    A client sends the same few documents over and over (about 8 ms each to parse and
    validate against the whole Admin schema: a third of the sandbox's time per request).
    Nothing downstream changes a document or an error, so one result serves every request,
    in every sandbox of the process. A syntax error is raised again each time (not cached)."""
    document = parse(query)
    return document, tuple(validate(schema, document))


def _choose_operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode | str:
    """The operation to run, or the error message saying why there is none."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        chosen = [o for o in operations if o.name and o.name.value == operation_name]
        if not chosen:
            return f'No operation named "{operation_name}"'
        return chosen[0]
    if len(operations) > 1:
        return "An operation name is required"
    return operations[0]


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
        extensions = payload.get("extensions") if isinstance(payload, dict) else None
        cost = extensions.get("cost") if isinstance(extensions, dict) else None
        cost = cost if isinstance(cost, dict) else {}
        errors = payload.get("errors") if isinstance(payload, dict) else None
        throttled = any(isinstance(e, dict) and isinstance(e.get("extensions"), dict)
                        and e["extensions"].get("code") == "THROTTLED" for e in errors or ())
        self.world.record(LogEntry(at=self.world.now(), api="shopify", method="POST", path=path, status=status,
                                   operation=operation, mutations=mutations,
                                   requested_cost=cost.get("requestedQueryCost"), actual_cost=cost.get("actualQueryCost"),
                                   throttled=throttled))
        return status, headers, payload

    def _handle(self, token: str | None, body: bytes) -> _Answer:
        with self.world.lock:
            app = self.world.app_for_token(token) if token else None
        if app is None:
            return 401, {}, INVALID_TOKEN_BODY, None, []
        request = _read_body(body)
        if not isinstance(request, _Request):
            return 400, {}, request, None, []
        try:
            document, errors = _checked(self.schema, request.query)
        except GraphQLSyntaxError as exc:
            return self._answer(app, {"errors": [syntax_error(exc)]})
        if errors:
            return self._answer(app, {"errors": shopify_validation_errors(document, errors)})
        operation = _choose_operation(document, request.operation_name)
        if isinstance(operation, str):
            return self._answer(app, {"errors": [{"message": operation}]})
        op_label = operation.name.value if operation.name else None
        coerced = get_variable_values(self.schema, operation.variable_definitions, request.variables)
        if isinstance(coerced, list):
            return self._answer(app, {"errors": variable_errors(operation, coerced, request.variables)}, op_label)
        return self._run(app, request, document, operation, coerced)

    def _answer(self, app: App, payload: dict[str, Any], op_label: str | None = None) -> _Answer:
        """A document refused before it ran: it costs nothing, and the answer says so."""
        payload.setdefault("extensions", {})["cost"] = self.limiter.cost_extension(app.id, 0, 0)
        return 200, {}, payload, op_label, []

    def _run(self, app: App, request: _Request, document: DocumentNode, operation: OperationDefinitionNode,
             coerced: dict[str, Any]) -> _Answer:
        """Charge the requested cost, execute, refund what the answer did not use."""
        op_label = operation.name.value if operation.name else None
        requested = query_cost(self.schema, document, request.operation_name, coerced)
        if requested > MAX_QUERY_COST:
            cost = self.limiter.cost_extension(app.id, requested, None)
            return 200, {}, max_cost_body(requested, cost), op_label, []
        if not self.limiter.try_consume(app.id, requested):
            return 200, {}, throttled_body(self.limiter.cost_extension(app.id, requested, None)), op_label, []

        ctx = RequestContext(world=self.world, app=app)
        with self.world.lock:
            result = execute(self.schema, document, context_value=ctx, variable_values=request.variables,
                             operation_name=request.operation_name, field_resolver=self._resolve,
                             type_resolver=self._resolve_type)
            if operation.operation == OperationType.MUTATION:
                # A mutation may change an order in place; no cached orders search outlives it.
                self.world.changed()
        actual = query_cost(self.schema, document, request.operation_name, coerced, result.data, actual=True)
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
