"""Relay connections the way Shopify pages them: opaque cursors, at most 250 a page."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any

from graphql import GraphQLError

from loopsync.sandbox.world import gid_number

MAX_PAGE_SIZE = 250


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


def _check_page_size(first: int | None, last: int | None) -> None:
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


def connection(items: Iterable[Any], args: dict[str, Any],
               sort_value: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A Relay connection over ``items`` (objects with ``.id``) sorted by (sort_value, id).

    Cursors carry the last item's sort value and id, not an offset, so they stay
    valid when items are added or removed between pages, as Shopify's do.
    """
    first, last = args.get("first"), args.get("last")
    _check_page_size(first, last)

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
