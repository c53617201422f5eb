"""Shopify's fulfillment-hold and tag rules, as plain functions over ``World`` objects.

Placing a hold (and splitting a fulfillment order for a hold on some of its
items), releasing holds and changing an order's tags follow what Shopify
documents for ``fulfillmentOrderHold``, ``fulfillmentOrderReleaseHold``,
``tagsAdd`` and ``tagsRemove``. No GraphQL here: ``mutations`` turns the input
into these calls and the results into payloads, and tests can call them directly.
A rule that says no returns a ``Refusal``: the user error Shopify answers with,
blaming the input field Shopify names. Callers hold ``world.lock``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loopsync.sandbox.webhook_payloads import hold_payload
from loopsync.sandbox.world import FulfillmentHold, FulfillmentOrder, FulfillmentOrderLineItem, Order, World

SUPPORTED_ACTIONS: dict[str, list[str]] = {
    # GUESS: the exact lists for a merchant-managed location; HOLD/RELEASE_HOLD follow the docs.
    "OPEN": ["CREATE_FULFILLMENT", "REPORT_PROGRESS", "MOVE", "HOLD", "SPLIT"],
    "IN_PROGRESS": ["CREATE_FULFILLMENT", "REPORT_PROGRESS", "HOLD", "MARK_AS_OPEN"],
    "ON_HOLD": ["RELEASE_HOLD", "HOLD", "MOVE"],
    "SCHEDULED": ["MARK_AS_OPEN", "HOLD"],
    "INCOMPLETE": ["CREATE_FULFILLMENT"],
    "CLOSED": [],
    "CANCELLED": [],
}
HOLDABLE = {status for status, actions in SUPPORTED_ACTIONS.items() if "HOLD" in actions}
MAX_HOLDS_PER_APP = 10
MAX_HANDLE_LENGTH = 64

_LINES_FIELD = ("fulfillmentHold", "fulfillmentOrderLineItems")


@dataclass(frozen=True)
class Refusal:
    """A user error: which input field Shopify blames, its message and its code (None: Shopify gives none)."""

    field: tuple[str, ...]
    message: str
    code: str | None


@dataclass(frozen=True)
class HoldRequest:
    """``FulfillmentHoldInput``; ``lines`` are (fulfillment order line item id, quantity), empty for all."""

    reason: str
    handle: str = ""
    reason_notes: str | None = None
    lines: Sequence[tuple[str, int]] = ()


@dataclass(frozen=True)
class Placed:
    hold: FulfillmentHold
    fulfillment_order: FulfillmentOrder  # the one holding the held items
    remaining: FulfillmentOrder | None  # the rest, split off; None when the whole fulfillment order is held


def supported_actions(fo: FulfillmentOrder) -> list[str]:
    actions = list(SUPPORTED_ACTIONS.get(fo.status, []))
    if fo.holds and "RELEASE_HOLD" not in actions:
        actions.append("RELEASE_HOLD")
    return actions


def place_hold(world: World, fo_id: str, app_id: str, request: HoldRequest) -> Placed | Refusal:
    """Hold a fulfillment order, or only ``request.lines`` of it (which splits off the rest)."""
    fo = world.fulfillment_orders.get(fo_id)
    if fo is None:
        return Refusal(("id",), "The fulfillment order could not be found.", "FULFILLMENT_ORDER_NOT_FOUND")
    refusal = _hold_refusal(fo, app_id, request.handle)
    if refusal is not None:
        return refusal
    held: dict[str, int] = {}
    if request.lines:
        chosen = _held_quantities(fo, request.lines)
        if isinstance(chosen, Refusal):
            return chosen
        held = chosen
    remaining = split_fulfillment_order(world, fo, held) if held else None
    hold = FulfillmentHold(
        id=world.new_gid("FulfillmentHold"),
        fulfillment_order_id=fo.id,
        app_id=app_id,
        handle=request.handle,
        reason=request.reason,
        reason_notes=request.reason_notes,
        created_at=world.now(),
        placed_at=world.clock(),
    )
    if fo.status != "ON_HOLD":
        fo.status_before_hold = fo.status
        fo.status = "ON_HOLD"
    fo.holds.append(hold)
    _bump(world, fo)
    world.emit("fulfillment_holds/added", lambda app: hold_payload(world, hold, fo, app))
    return Placed(hold, fo, remaining)


def _hold_refusal(fo: FulfillmentOrder, app_id: str, handle: str) -> Refusal | None:
    """Why this app may not put another hold with this handle on ``fo``, if it may not."""
    if fo.status not in HOLDABLE:
        # GUESS: the code and wording for a CLOSED/CANCELLED/INCOMPLETE fulfillment order are
        # UNCONFIRMED; the sandbox answers with a user error without a code.
        return Refusal(("id",), f"The fulfillment order's status is {fo.status} and it can't be held.", None)
    mine = [h for h in fo.holds if h.app_id == app_id]
    if len(handle) > MAX_HANDLE_LENGTH:
        # GUESS: the error for an over-long handle.
        return Refusal(("fulfillmentHold", "handle"),
                       f"Handle is too long (maximum is {MAX_HANDLE_LENGTH} characters)", None)
    if len(mine) >= MAX_HOLDS_PER_APP:
        return Refusal(
            ("id",), "The maximum number of fulfillment holds for this fulfillment order has been reached for "
            "this app. An app can only have up to 10 holds on a single fulfillment order at any one time.",
            "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED")
    if any(h.handle == handle for h in mine):
        return Refusal(
            ("fulfillmentHold", "handle"),
            "The handle provided for the fulfillment hold is already in use by this app for another hold on "
            "this fulfillment order.", "DUPLICATE_FULFILLMENT_HOLD_HANDLE")
    return None


def _held_quantities(fo: FulfillmentOrder, lines: Sequence[tuple[str, int]]) -> dict[str, int] | Refusal:
    """The quantity to hold per line of ``fo``; empty when that is every item in full (no split needed)."""
    if fo.holds or fo.status == "ON_HOLD":
        return Refusal(_LINES_FIELD, "The fulfillment order is not in a splittable state.",
                       "FULFILLMENT_ORDER_NOT_SPLITTABLE")
    ids = [line_id for line_id, _ in lines]
    if len(set(ids)) != len(ids):
        return Refusal(_LINES_FIELD, "The fulfillment order line items are not unique.",
                       "DUPLICATED_FULFILLMENT_ORDER_LINE_ITEMS")
    by_id = {li.id: li for li in fo.line_items}
    held: dict[str, int] = {}
    for n, (line_id, quantity) in enumerate(lines):
        where = (*_LINES_FIELD, str(n), "quantity")
        if quantity <= 0:
            return Refusal(where, "The fulfillment order line item quantity must be greater than 0.",
                           "GREATER_THAN_ZERO")
        line = by_id.get(line_id)
        if line is None:
            # GUESS: a line item of another fulfillment order is reported as an invalid quantity.
            return Refusal((*_LINES_FIELD, str(n), "id"), "The fulfillment order line item is invalid.",
                           "INVALID_LINE_ITEM_QUANTITY")
        if quantity > line.remaining_quantity:
            return Refusal(where, "The fulfillment order line item quantity is invalid.",
                           "INVALID_LINE_ITEM_QUANTITY")
        held[line.id] = quantity
    if all(held.get(li.id, 0) == li.remaining_quantity for li in fo.line_items):
        return {}  # every item in full: the same as holding the whole fulfillment order
    return held


def split_fulfillment_order(world: World, fo: FulfillmentOrder, held: Mapping[str, int]) -> FulfillmentOrder:
    """Keep the held quantities on ``fo``; move the rest to a new fulfillment order, which is returned.

    Shopify documents that the unheld items come back as ``remainingFulfillmentOrder``
    (FulfillmentOrderHoldPayload), and for ``fulfillmentOrderSplit`` that
    ``fulfillmentOrder`` is "the original fulfillment order as a result of the split"
    (FulfillmentOrderSplitResult). GUESS: a hold's split keeps the original id for the
    held items in the same way; loopsync does not depend on it (it records the id
    the payload names).
    """
    now = world.now()
    moved: list[FulfillmentOrderLineItem] = []
    kept: list[FulfillmentOrderLineItem] = []
    for line in fo.line_items:
        hold_qty = held.get(line.id, 0)
        rest = line.remaining_quantity - hold_qty
        if hold_qty:
            line.total_quantity -= rest
            line.remaining_quantity = hold_qty
            kept.append(line)
        if rest:
            moved.append(FulfillmentOrderLineItem(
                id=world.new_gid("FulfillmentOrderLineItem"), line_item_id=line.line_item_id,
                total_quantity=rest, remaining_quantity=rest))
    fo.line_items = kept
    remaining = FulfillmentOrder(
        id=world.new_gid("FulfillmentOrder"), order_id=fo.order_id, status=fo.status, line_items=moved,
        created_at=now, updated_at=now, request_status=fo.request_status)
    world.fulfillment_orders[remaining.id] = remaining
    order = world.orders[fo.order_id]
    order.fulfillment_order_ids.insert(order.fulfillment_order_ids.index(fo.id) + 1, remaining.id)
    return remaining


def release_holds(world: World, fo_id: str, app_id: str,
                  hold_ids: Sequence[str] | None = None) -> list[FulfillmentHold] | Refusal:
    """Release ``hold_ids`` (None: every hold, whoever placed it) on one fulfillment order; returns what was released.

    The fulfillment order goes back to the status it had before its first hold once none is left.
    """
    fo = world.fulfillment_orders.get(fo_id)
    if fo is None:
        return Refusal(("id",), "The fulfillment order wasn't found.", "FULFILLMENT_ORDER_NOT_FOUND")
    if hold_ids is None:
        # The 2026-10 schema on holdIds: "If not supplied, all holds for the fulfillment order
        # will be released ... released prematurely": other apps' and Shopify's holds too.
        # That is how Shopify Flow's release action wipes a pre-order hold.
        targets = list(fo.holds)
    else:
        targets = []
        for n, hold_id in enumerate(hold_ids):
            hold = next((h for h in fo.holds if h.id == hold_id), None)
            if hold is None:
                # GUESS: a hold id that is not on this fulfillment order.
                return Refusal(("holdIds", str(n)), "The fulfillment hold wasn't found.",
                               "FULFILLMENT_ORDER_NOT_FOUND")
            if hold.app_id != app_id:
                return Refusal(("holdIds", str(n)), "The app doesn't have access to release the fulfillment hold.",
                               "INVALID_ACCESS")
            targets.append(hold)
    if targets:
        fo.holds = [h for h in fo.holds if h not in targets]
        if not fo.holds and fo.status == "ON_HOLD":
            fo.status = fo.status_before_hold or "OPEN"
        _bump(world, fo)
        # One delivery per hold released, as Shopify documents for this topic.
        for hold in targets:
            world.emit("fulfillment_holds/released", lambda app, h=hold: hold_payload(world, h, fo, app))
    return targets


def tag_list(tags: Sequence[str]) -> list[str]:
    """Each element may itself be a comma-separated list."""
    out: list[str] = []
    for raw in tags:
        out.extend(t.strip() for t in raw.split(",") if t.strip())
    return out


def add_tags(world: World, order: Order, tags: Sequence[str]) -> bool:
    """Add the tags the order lacks; returns whether it changed.

    GUESS: tags compare case-insensitively, keeping the spelling already on the order.
    """
    before = list(order.tags)
    for tag in tag_list(tags):
        if all(t.lower() != tag.lower() for t in order.tags):
            order.tags.append(tag)
    return _touch_if_changed(world, order, before)


def remove_tags(world: World, order: Order, tags: Sequence[str]) -> bool:
    """Remove the tags, whatever their case; returns whether the order changed."""
    before = list(order.tags)
    drop = {t.lower() for t in tag_list(tags)}
    order.tags = [t for t in order.tags if t.lower() not in drop]
    return _touch_if_changed(world, order, before)


def _touch_if_changed(world: World, order: Order, before: list[str]) -> bool:
    if order.tags == before:
        # GUESS: a no-op tag change does not touch updatedAt (Rails skips saving unchanged records).
        return False
    world.touch_order(order.id)
    return True


def _bump(world: World, fo: FulfillmentOrder) -> None:
    """A hold or release updates the fulfillment order and its order, as Shopify does."""
    fo.updated_at = world.now()
    world.touch_order(fo.order_id)
