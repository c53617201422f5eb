"""Relay connections the way Shopify pages them: opaque cursors, at most 250 a page."""

from __future__ import annotations

import base64
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from operator import itemgetter
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


def sort(items: Iterable[Any], sort_value: Callable[[Any], Any] | None = None) -> tuple[list[Any], list[tuple]]:
    """``items`` (objects with ``.id``) ascending by (sort_value, id number), and those keys."""
    keyed = [((sort_value(i) if sort_value else 0, gid_number(i.id)), i) for i in items]
    keyed.sort(key=itemgetter(0))
    return [i for _, i in keyed], [k for k, _ in keyed]


def connection(items: Iterable[Any], args: dict[str, Any],
               sort_value: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A Relay connection over ``items`` (objects with ``.id``) sorted by (sort_value, id)."""
    _check_page_size(args.get("first"), args.get("last"))
    return page(*sort(items, sort_value), args)


def page(ordered: list[Any], keys: list[tuple], args: dict[str, Any]) -> dict[str, Any]:
    """One page of a connection over ``ordered``, sorted ascending by ``keys`` (see ``sort``);
    ``reverse`` reads it from the other end.

    Cursors carry the last item's sort value and id, not an offset, so they stay
    valid when items are added or removed between pages, as Shopify's do. Finding a
    cursor's place is a binary search, so paging through n items costs n log n, not n².
    """
    first, last = args.get("first"), args.get("last")
    _check_page_size(first, last)
    reverse = bool(args.get("reverse"))
    n = len(ordered)

    def place(cursor: str, side: Callable[..., int]) -> int:
        value, number = decode_cursor(cursor)
        try:
            return side(keys, (value, number))
        except TypeError as exc:  # a cursor from another sort key
            raise GraphQLError("Invalid cursor for current pagination sort.") from exc

    # lo/hi index the items in reading order: ascending, or descending when reversed.
    lo, hi = 0, n
    if args.get("after"):
        lo = n - place(args["after"], bisect_left) if reverse else place(args["after"], bisect_right)
    if args.get("before"):
        hi = n - place(args["before"], bisect_right) if reverse else place(args["before"], bisect_left)
        hi = max(hi, lo)
    start, end = lo, hi
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    at = [n - 1 - i for i in range(start, end)] if reverse else list(range(start, end))
    page = [ordered[i] for i in at]
    cursors = [encode_cursor(ordered[i].id, keys[i][0]) for i in at]
    return {
        "edges": [{"cursor": c, "node": item} for c, item in zip(cursors, page, strict=True)],
        "nodes": page,
        "pageInfo": {
            "hasNextPage": end < n,
            "hasPreviousPage": start > 0,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }
