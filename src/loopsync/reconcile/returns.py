"""Find the Loop return an exchange order came from.

Which names to ask Loop for and what counts as a match are loopsync's rules;
how Loop is asked (its lookups and list parameters) is ``LoopClient.find_return``'s.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from loopsync.loop import LoopClient
from loopsync.models import LoopReturn, Order

# How far back to look for the Loop return in the list fallback, before the
# exchange order was created. Loop creates the exchange order when it processes
# the return, which can be weeks after the return was opened.
RETURN_SEARCH_WINDOW = timedelta(days=90)

_TRAILING_COUNTER = re.compile(r"-\d+$")


def original_order_name(order: Order, prefix: str | None) -> str | None:
    """``EXC-1086-1`` → ``1086``: Loop names exchange orders after the original."""
    name = order.name.lstrip("#")
    if not prefix or not name.upper().startswith(prefix.upper()):
        return None
    rest = _TRAILING_COUNTER.sub("", name[len(prefix):])
    return rest.lstrip("#") or None


def order_names(order: Order, prefix: str | None) -> list[str]:
    """The original order names a separate exchange order points at, best guess first."""
    names = []
    original = original_order_name(order, prefix)
    if original:
        names.append(original)
    for tag in order.tags:
        # Loop tags a separate exchange order with the original order number.
        if tag.lstrip("#").isdigit() and tag.lstrip("#") != original:
            names.append(tag.lstrip("#"))
    return names


def find_return(loop: LoopClient, order: Order, kind: str, prefix: str | None, now: datetime) -> int | None:
    def matches(ret: LoopReturn) -> bool:
        if kind == "native":
            return str(ret.provider_order_id or "") == str(order.legacy_id)
        return any(
            x.exchange_order_id == order.legacy_id or (x.exchange_order_name or "") == order.name
            for x in ret.exchanges
        )

    created = order.created_at if order.created_at.tzinfo else order.created_at.replace(tzinfo=UTC)
    # An hour past our clock: Loop's may run ahead of ours, and a return it updated
    # a moment ago must not fall outside the window. GUESS: Loop accepts a `to` in
    # the future (the docs only bound the range's length).
    return loop.find_return(
        matches,
        order_id=order.legacy_id if kind == "native" else None,
        order_names=() if kind == "native" else order_names(order, prefix),
        since=created - RETURN_SEARCH_WINDOW,
        until=now + timedelta(hours=1),
    )
