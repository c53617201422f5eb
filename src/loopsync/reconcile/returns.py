"""Find the Loop return an exchange order came from, with as few Loop requests as a scan allows.

Which names to ask Loop for and what counts as a match are loopsync's rules; how
Loop is asked (its lookups and list parameters) is ``LoopClient``'s.

Loop allows 300 requests a minute per key, so on a backfill the Loop side bounds a
scan. A details lookup costs one request per order (two for an order Loop tags with
a second name); the returns list costs one request per state (Loop's list takes one
state at a time: open, closed, expired, review) per 120-day window per 750 returns,
whatever the number of exchanges it serves. So a :class:`ReturnFinder` looks up the
first few orders of a scan one by one, and once a scan has more orders to match than
the list would cost (or a lookup misses), reads the list once, over one window
covering every order of the scan, and matches the rest locally from that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from loopsync.loop import DEFAULT_STATES, LoopClient
from loopsync.models import LoopReturn, Order

# How far back to look for the Loop return, before the exchange order was created.
# Loop creates the exchange order when it processes the return, which can be weeks
# after the return was opened; a return is updated at or after it is created, so
# listing by update time from here finds every return opened in that span.
RETURN_SEARCH_WINDOW = timedelta(days=90)

# One-by-one lookups a scan makes before the list is the cheaper way: the list
# costs at least one request per state.
DETAILS_BEFORE_LIST = len(DEFAULT_STATES)

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


def matcher(order: Order, kind: str) -> Callable[[LoopReturn], bool]:
    """Whether a return is the one ``order`` (a ``kind`` exchange) came from."""
    def matches(ret: LoopReturn) -> bool:
        if kind == "native":
            return str(ret.provider_order_id or "") == str(order.legacy_id)
        return any(
            x.exchange_order_id == order.legacy_id or (x.exchange_order_name or "") == order.name
            for x in ret.exchanges
        )
    return matches


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReturnFinder:
    """Finds returns for one scan's orders; what it listed is kept until :meth:`reset`."""

    def __init__(self, loop: LoopClient) -> None:
        self.loop = loop
        self.reset()

    def reset(self) -> None:
        """A new scan: Loop may have changed since the last list was read."""
        self._listed: list[LoopReturn] = []
        self._window: tuple[datetime, datetime] | None = None
        self._lookups = 0

    def find(self, order: Order, kind: str, prefix: str | None, now: datetime) -> int | None:
        """The id of the return ``order`` came from, or None when Loop has none (yet)."""
        matches = matcher(order, kind)
        since = _utc(order.created_at) - RETURN_SEARCH_WINDOW
        if self._window is None and self._lookups < DETAILS_BEFORE_LIST:
            self._lookups += 1
            lookups = [{"order_id": order.legacy_id}] if kind == "native" else [
                {"order_name": name} for name in order_names(order, prefix)
            ]
            for lookup in lookups:
                found = self.loop.return_details(**lookup)
                if found is not None and matches(found):
                    return found.id
        # An hour past our clock: Loop's may run ahead of ours, and a return it updated
        # a moment ago must not fall outside the window. GUESS: Loop accepts a `to` in
        # the future (the docs only bound the range's length).
        self._cover(since, _utc(now) + timedelta(hours=1))
        return next((r.id for r in self._listed if matches(r)), None)

    def _cover(self, since: datetime, until: datetime) -> None:
        """List, by update time and every state, what the window read so far does not cover.

        A scan reads its orders oldest first, so the first list's window, from the
        oldest order's search start to now, covers every order after it; an older
        order adds only the span before it. The window's end stays where the first
        list put it: a return Loop makes during the scan is found by the next one.
        """
        if self._window is None:
            spans = [(since, until)]
            self._window = (since, until)
        else:
            start, end = self._window
            spans = [(since, start)] if since < start else []
            self._window = (min(since, start), end)
        seen = {r.id for r in self._listed}
        for start, end in spans:
            # Out-of-stock exchanges wait in `review`, which Loop's default states leave out.
            for ret in self.loop.iter_returns(since=start, until=end, filter="updated_at", page_size=750):
                if ret.id not in seen:
                    seen.add(ret.id)
                    self._listed.append(ret)
