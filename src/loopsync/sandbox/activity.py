"""What other actors do to a live store, so tests and scenarios can do it to the sandbox.

A merchant's store is not loopsync's alone: Shopify Flow releases holds when a
return closes, staff tag orders in the admin, the warehouse ships, an order edit
removes a line, an order is cancelled. Each function here changes the world the
way Shopify would and bumps ``updatedAt`` where Shopify does, so a scan sees it
exactly as it would see the real change. Nothing here goes through GraphQL:
these actors are not loopsync.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from loopsync.sandbox.shopify import rules
from loopsync.sandbox.world import App, FulfillmentHold, FulfillmentOrder, Order, World, gid_number

FLOW_APP_TITLE = "Shopify Flow"


class ActivityError(ValueError):
    """The change cannot be made to this store (unknown order, a held fulfillment order shipped, …)."""


def order_named(world: World, name: str) -> Order:
    order = world.order_by_name(name)
    if order is None:
        raise ActivityError(f"no order named {name!r} in the sandbox store")
    return order


def _fulfillment_order(world: World, fo_id: str) -> FulfillmentOrder:
    fo = world.fulfillment_orders.get(fo_id)
    if fo is None:
        raise ActivityError(f"no fulfillment order {fo_id!r} in the sandbox store")
    return fo


def _flow_app(world: World) -> App:
    found = next((a for a in world.apps.values() if a.title == FLOW_APP_TITLE), None)
    if found is not None:
        return found
    from loopsync.sandbox.builders import add_app

    return add_app(world, FLOW_APP_TITLE, ["write_merchant_managed_fulfillment_orders"])


def release_every_hold(world: World, order_name: str) -> list[FulfillmentHold]:
    """Flow's "Release fulfillment order holds" action: every hold on every fulfillment order of the order.

    Flow calls ``fulfillmentOrderReleaseHold`` without ``holdIds``, which releases
    every hold, whoever placed it (the 2026-10 schema's own description of
    ``holdIds``), Shopify's ``AWAITING_RETURN_ITEMS`` hold and loopsync's included.
    """
    with world.lock:
        order = order_named(world, order_name)
        app = _flow_app(world)
        released: list[FulfillmentHold] = []
        for fo_id in order.fulfillment_order_ids:
            result = rules.release_holds(world, fo_id, app.id)
            if isinstance(result, rules.Refusal):
                raise ActivityError(result.message)
            released.extend(result)
        return released


def staff_add_tags(world: World, order_name: str, tags: Iterable[str]) -> bool:
    """Staff add tags in the admin; returns whether the order changed."""
    with world.lock:
        return rules.add_tags(world, order_named(world, order_name), list(tags))


def staff_remove_tags(world: World, order_name: str, tags: Iterable[str]) -> bool:
    """Staff remove tags in the admin; returns whether the order changed."""
    with world.lock:
        return rules.remove_tags(world, order_named(world, order_name), list(tags))


def ship(world: World, fo_id: str) -> FulfillmentOrder:
    """The warehouse fulfils everything left on a fulfillment order: it closes.

    Shopify refuses to fulfil a fulfillment order that is on hold, so this does too:
    release the holds first (as the staff member shipping it would).
    """
    with world.lock:
        fo = _fulfillment_order(world, fo_id)
        if fo.holds:
            raise ActivityError(f"fulfillment order {fo_id} is on hold; release its holds before shipping it")
        if fo.status in ("CLOSED", "CANCELLED"):
            raise ActivityError(f"fulfillment order {fo_id} is already {fo.status.lower()}")
        for line in fo.line_items:
            line.remaining_quantity = 0
        fo.status = "CLOSED"
        fo.updated_at = world.now()
        world.touch_order(fo.order_id)
        return fo


def remove_line(world: World, order_name: str, sku: str) -> Order:
    """An order edit removes a line: its current quantity drops to 0 and nothing of it is left to ship.

    GUESS: a fulfillment order left with nothing to ship after an edit is CLOSED, and
    its holds go with it (Shopify documents neither; an empty OPEN one would be shown
    as fulfillable with nothing in it).
    """
    with world.lock:
        order = order_named(world, order_name)
        line = next((li for li in order.line_items if li.sku == sku and li.quantity > 0), None)
        if line is None:
            raise ActivityError(f"order {order_name} has no line with SKU {sku!r} left to remove")
        line.quantity = 0
        for fo_id in order.fulfillment_order_ids:
            fo = world.fulfillment_orders[fo_id]
            touched = False
            for fo_line in fo.line_items:
                if fo_line.line_item_id == line.id and fo_line.remaining_quantity:
                    fo_line.remaining_quantity = fo_line.total_quantity = 0
                    touched = True
            if touched and fo.status not in ("CLOSED", "CANCELLED") and not any(
                fl.remaining_quantity for fl in fo.line_items
            ):
                fo.status, fo.holds = "CLOSED", []
            if touched:
                fo.updated_at = world.now()
        world.touch_order(order.id)
        return order


def cancel(world: World, order_name: str) -> Order:
    """The merchant cancels the order: every fulfillment order still open is cancelled, holds and all."""
    with world.lock:
        order = order_named(world, order_name)
        order.cancelled_at = world.now()
        order.closed = True
        for fo_id in order.fulfillment_order_ids:
            fo = world.fulfillment_orders[fo_id]
            if fo.status not in ("CLOSED", "CANCELLED"):
                fo.status, fo.holds = "CANCELLED", []
                fo.updated_at = world.now()
        world.touch_order(order.id)
        return order


def create_exchange(world: World, action: dict) -> dict:
    """Loop creates an exchange order now, as a customer's exchange is processed: what a webhook receiver sees live.

    Takes ``sku`` (or ``variant``, a gid) of the item exchanged into, optionally ``original``
    (an order name; default: a new original order of the same item is made first),
    ``quantity``, ``mode`` (separate or native), ``return`` (null: no Loop return yet) and
    ``routing_delay_ms``: with a delay
    (default: the webhook switch of that name) the order first exists with no fulfillment
    order, and ``fulfillment_orders/order_routing_complete`` fires when it appears, as
    the facts doc says Shopify can do. Returns what was created, with the moment it was.
    """
    from loopsync.sandbox import builders
    from loopsync.sandbox.scenarios import ScenarioError, add_exchange

    sku = action.get("sku") or action.get("variant")
    if not sku:
        raise ActivityError("create_exchange needs 'sku' (or 'variant'): the item exchanged into")
    delay = action.get("routing_delay_ms")
    if delay is None:
        switches = world.webhook_switches
        delay = switches.routing_delay_ms if switches is not None else 0
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ActivityError("routing_delay_ms must be a non-negative number of milliseconds")
    quantity = action.get("quantity", 1)
    mode = action.get("mode", "separate")
    with world.lock:
        original = action.get("original") or _new_original(world, str(sku), quantity)
        spec: dict = {"mode": mode, "original": original, "lines": [{"sku": sku, "quantity": quantity}]}
        if "return" in action:
            spec["return"] = action["return"]  # null: Loop's return appears later (create_loop_return)
        if delay and mode == "separate":
            spec["fulfillment_orders"] = []
        try:
            created = add_exchange(world, spec, "create_exchange")
        except ScenarioError as exc:
            raise ActivityError(str(exc)) from None
        created["created_at_exact"] = world.clock().isoformat(timespec="microseconds").replace("+00:00", "Z")
        created["original"] = original
    if delay and mode == "separate":
        order_id = created["order"]["id"]

        def route() -> None:
            builders.route_order(world, order_id)

        timer = threading.Timer(delay / 1000, route)
        timer.daemon = True
        timer.start()
    return created


def create_loop_return(world: World, action: dict) -> dict:
    """Loop's return for an exchange order appears now, and ``return.created`` goes to Loop's webhooks.

    Takes ``order``, a separate exchange order made without a return (``"return": null``),
    and optionally ``original`` (default: the order named by its number, EXC-2001-1 -> #2001).
    """
    from loopsync.sandbox.scenarios.exchanges import add_loop_return, loop_exchange

    with world.lock:
        order = order_named(world, str(action.get("order") or ""))
        number = re.search(r"(\d+)-\d+$", order.name)
        original_name = action.get("original") or (f"#{number.group(1)}" if number else None)
        original = world.order_by_name(original_name) if original_name else None
        if original is None or original.id == order.id:
            raise ActivityError(f"create_loop_return: no original order for {order.name}; give 'original'")
        if any(x.exchange_order_id == gid_number(order.id) for r in world.loop_returns.values() for x in r.exchanges):
            raise ActivityError(f"create_loop_return: {order.name} already has a Loop return")
        exchanges = [loop_exchange(world, li.variant_id, order) for li in order.line_items if li.variant_id]
        ret = add_loop_return(world, original, exchanges)
        return {"loop_return": {"id": ret.id, "state": ret.state}, "order": order.name, "original": original.name}


def _new_original(world: World, sku: str, quantity: int) -> str:
    """A delivered original order for an exchange to hang on: #2001, #2002, … (the demo's numbers stay clear)."""
    from loopsync.sandbox.scenarios.orders import add_order

    number = 2001
    while world.order_by_name(f"#{number}") is not None:
        number += 1
    add_order(world, {"name": f"#{number}", "created": "-3d", "lines": [{"sku": sku, "quantity": quantity}],
                      "closed": True}, "create_exchange.original")
    return f"#{number}"


def ship_preorder(world: World, action: dict) -> dict:
    """The pre-order ships: the variant leaves its pre-order selling plan groups (``selling_plan_groups/update``)."""
    ref = action.get("sku") or action.get("variant")
    with world.lock:
        variant = next((v for v in world.variants.values() if ref in (v.sku, v.id)), None)
        if variant is None:
            raise ActivityError(f"no variant with SKU or id {ref!r} in the sandbox store")
        world.take_off_preorder(variant.id)
        return {"variant_id": variant.id}


#: What a scenario's ``activity:`` list and the ``/_sandbox/activity`` route can ask for.
ACTIONS = {
    "release_every_hold": lambda world, a: release_every_hold(world, a["order"]),
    "add_tags": lambda world, a: staff_add_tags(world, a["order"], a["tags"]),
    "remove_tags": lambda world, a: staff_remove_tags(world, a["order"], a["tags"]),
    "ship": lambda world, a: ship(world, _fo_of(world, a)),
    "remove_line": lambda world, a: remove_line(world, a["order"], a["sku"]),
    "cancel": lambda world, a: cancel(world, a["order"]),
    "create_exchange": create_exchange,
    "ship_preorder": ship_preorder,
    "create_loop_return": create_loop_return,
}


def _fo_of(world: World, action: dict) -> str:
    """``fulfillment_order`` as a gid, or ``order`` plus ``sku``: the fulfillment order holding that SKU."""
    if action.get("fulfillment_order"):
        return str(action["fulfillment_order"])
    order = order_named(world, action["order"])
    line_ids = {li.id for li in order.line_items if li.sku == action.get("sku")}
    for fo_id in order.fulfillment_order_ids:
        fo = world.fulfillment_orders[fo_id]
        if any(fl.line_item_id in line_ids and fl.remaining_quantity for fl in fo.line_items):
            return fo_id
    raise ActivityError(f"order {action['order']} has no fulfillment order with SKU {action.get('sku')!r} to ship")


def apply(world: World, action: dict) -> object:
    """One action as a mapping: ``{"do": "release_every_hold", "order": "EXC-1086-1"}``; returns its result."""
    if not isinstance(action, dict) or action.get("do") not in ACTIONS:
        raise ActivityError(f"an activity needs 'do', one of: {', '.join(ACTIONS)}")
    try:
        return ACTIONS[action["do"]](world, action)
    except KeyError as exc:
        raise ActivityError(f"activity {action['do']!r} needs {exc.args[0]!r}") from None
