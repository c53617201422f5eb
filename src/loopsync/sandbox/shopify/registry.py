"""Which Python function answers which schema field, and what answers every other field.

``resolvers`` and ``mutations`` each fill a ``Resolvers`` table; the endpoint merges them.
A field with no entry reads the camelCase name as a dict key or a snake_case attribute;
a field the world does not model is null when nullable and a visible error when not,
so a gap never passes silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from graphql import GraphQLError, GraphQLResolveInfo, get_named_type, is_leaf_type, is_non_null_type

from loopsync.sandbox.shopify.context import RequestContext
from loopsync.sandbox.world import iso

Resolver = Callable[..., Any]


class Resolvers(dict[tuple[str, str], Resolver]):
    """(type name, field name) -> resolver; ``field`` registers one function for several fields."""

    def field(self, type_name: str, *field_names: str) -> Callable[[Resolver], Resolver]:
        def register(fn: Resolver) -> Resolver:
            for name in field_names:
                self[(type_name, name)] = fn
            return fn

        return register


def ctx_of(info: GraphQLResolveInfo) -> RequestContext:
    return info.context


def not_modeled(type_name: str, field_name: str) -> GraphQLError:
    return GraphQLError(
        f"Field '{field_name}' on type '{type_name}' is not modeled by the sandbox",
        extensions={"code": "SANDBOX_NOT_MODELED"},
    )


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
