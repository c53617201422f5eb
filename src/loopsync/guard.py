"""The hold guard's decisions, without I/O: what to do when loopsync's hold is gone at
Shopify and loopsync did not lift it, when a fight with another app is over its limit,
whether a pre-order item has anything left to ship, and the text Shopify shows on a hold.

Shopify does not say who released a hold (api-facts/webhooks.md): Flow's "Release
fulfillment order holds" action, any app calling ``fulfillmentOrderReleaseHold`` without
``holdIds``, and a person in the admin look the same. So an outside release is not taken
as the merchant's word: support says "ship it" with the release tag or ``loopsync
release``, and everything else gets the hold put back, up to a limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from loopsync import text
from loopsync.models import Order

#: What to do about a loopsync hold that Shopify no longer shows.
#: ``rehold``: put it back; ``give_up``: the fight is over its limit, leave it off and say so;
#: ``respect``: take it as the merchant's decision (never hold the order again);
#: ``closed``: its fulfillment order has nothing left to ship, so there is nothing to hold.
GoneVerdict = Literal["rehold", "give_up", "respect", "closed"]

REHELD = "re-held: the hold was released outside loopsync"
GIVE_UP = "another app or automation keeps releasing this hold; check Shopify Flow"
ALREADY_SHIPPED = "its pre-order item has already shipped"

#: GUESS: Shopify documents no limit for a hold's reasonNotes; 255 is a common column size
#: and the limit loopsync already keeps to (detect.WINDOW_MAX_LENGTH was chosen for it).
HOLD_NOTES_MAX_LENGTH = 255

# Fulfillment orders that will never ship anything again (Shopify's FulfillmentOrderStatus).
_FINISHED = frozenset({"CLOSED", "CANCELLED"})


@dataclass(frozen=True)
class GoneHold:
    """The facts about one loopsync hold the ledger calls active and Shopify no longer shows."""

    fulfillment_order_status: str | None  # None: the fulfillment order is gone from the order
    still_on_preorder: bool
    released_by_support: bool  # `loopsync release` ran, or the order carries the release tag
    mode: str  # the external_release setting: rehold | respect
    losses_in_window: int  # outside releases of this hold within rehold_window, this one included
    limit: int  # rehold_limit


def when_gone(facts: GoneHold) -> GoneVerdict:
    """What loopsync does about a hold of its own that someone else lifted."""
    if facts.fulfillment_order_status is None or facts.fulfillment_order_status in _FINISHED:
        return "closed"
    if facts.mode == "respect" or facts.released_by_support or not facts.still_on_preorder:
        return "respect"
    if over_limit(facts.losses_in_window, facts.limit):
        return "give_up"
    return "rehold"


def over_limit(losses_in_window: int, limit: int) -> bool:
    """More than ``limit`` outside releases within the window: another app keeps undoing the hold."""
    return losses_in_window > limit


def window_start(now: datetime, window: timedelta) -> datetime:
    """The earliest outside release that still counts towards the limit at ``now``."""
    return now - window


def nothing_left_to_ship(order: Order, preorder_line_item_ids: Iterable[str]) -> bool:
    """True when none of the pre-order line items has a quantity left to ship on an open
    fulfillment order: shipped, cancelled, refunded, or removed by an order edit."""
    wanted = set(preorder_line_item_ids)
    if not wanted or not order.fulfillment_orders:
        # No fulfillment order read at all is no evidence that anything shipped.
        return False
    # GUESS: a line an order edit removed may be left on its fulfillment order with nothing
    # remaining (as the sandbox does) or be gone from it; either way nothing of it ships.
    for fo in order.fulfillment_orders:
        if fo.status in _FINISHED:
            continue
        if any(line.line_item_id in wanted and line.remaining_quantity > 0 for line in fo.lines):
            return False
    return True


def hold_reason_notes(window: str, release_tag: str) -> str:
    """What Shopify shows on the order page next to loopsync's hold, at most HOLD_NOTES_MAX_LENGTH.

    ``Pre-order exchange, ships 15 March 2027. Held by loopsync: add the tag loopsync-release
    to ship it now.`` A release tag too long to fit leaves the sentence out rather than cut it
    (a cut tag would tell support to add the wrong one); a long window is shortened.
    """
    window = text.one_line(window) or "to be confirmed"
    how = f" Held by loopsync: add the tag {text.one_line(release_tag)} to ship it now."
    if len(how) > HOLD_NOTES_MAX_LENGTH // 2:
        how = " Held by loopsync."
    room = HOLD_NOTES_MAX_LENGTH - len("Pre-order exchange, ships .") - len(how)
    return f"Pre-order exchange, ships {text.shorten(window, room)}.{how}"
