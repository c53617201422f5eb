"""Loop exchanges in the scenario format, and the Loop returns that point at them.

A separate exchange is Loop's own order (``EXC-1086-1``) tagged with the original's
number, the original getting ``LE:Exchange``; a native exchange adds Shopify exchange
line items (and a fulfillment order) to the original and tags it ``Loop Exchange``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from loopsync.sandbox import builders
from loopsync.sandbox.scenarios.orders import add_holds, add_order, line_items
from loopsync.sandbox.scenarios.values import ScenarioError, as_mapping, check_keys, parse_when, required
from loopsync.sandbox.webhook_payloads import loop_return_payload
from loopsync.sandbox.webhooks import LOOP_TOPIC_PREFIX
from loopsync.sandbox.world import LoopExchange, LoopReturn, Order, World, gid_number, iso

DEFAULT_PREFIX = "EXC-"
FIRST_LOOP_RETURN_ID = 41_000_001
FIRST_LOOP_ORDER_ID = 61_000_001

_EXCHANGE_KEYS = {"mode", "original", "name", "prefix", "created", "lines", "tags", "fulfillment_orders", "holds",
                  "closed", "return"}
_RETURN_KEYS = {"id", "state", "customer", "created", "out_of_stock"}
_RETURN_STATES = ("open", "closed", "cancelled", "expired", "review")


def _next_loop_return_id(world: World) -> int:
    return max(world.loop_returns, default=FIRST_LOOP_RETURN_ID - 1) + 1


def add_loop_return(
    world: World,
    original: Order,
    exchanges: list[LoopExchange],
    *,
    state: str = "open",
    customer: str = "customer@example.com",
    created_at: datetime | None = None,
    return_id: int | None = None,
    outcome: str = "exchange",
) -> LoopReturn:
    """A Loop return on ``original`` whose exchanges[] point at the Shopify exchange order(s)."""
    with world.lock:
        rid = return_id if return_id is not None else _next_loop_return_id(world)
        if rid in world.loop_returns:
            raise ScenarioError(f"a Loop return with id {rid} already exists")
        created = created_at or world.now()
        ret = LoopReturn(
            id=rid,
            state=state,
            created_at=created,
            updated_at=created,
            order_id=FIRST_LOOP_ORDER_ID + gid_number(original.id) % 10_000_000,
            order_name=original.name,
            provider_order_id=str(gid_number(original.id)),
            customer=customer,
            exchanges=exchanges,
            outcome=outcome,
        )
        world.loop_returns[rid] = ret
        world.emit(LOOP_TOPIC_PREFIX + "return.created", lambda _app: loop_return_payload(ret, "return.created"))
        return ret


def loop_exchange(world: World, variant_id: str, order: Order, price_quantity: int = 1) -> LoopExchange:
    variant = world.variants[variant_id]
    product = world.products[variant.product_id]
    return LoopExchange(
        exchange_id=str(world.next_id()),
        exchange_order_id=gid_number(order.id),
        exchange_order_name=order.name,
        product_id=str(gid_number(product.id)),
        variant_id=str(gid_number(variant.id)),
        sku=variant.sku or "",
        title=f"{product.title} - {variant.title}",
        price=f"{float(variant.price) * price_quantity:.2f}",
    )


@dataclass
class _Exchanged:
    order: Order  # the order the exchange items are on
    fulfillment_order_ids: list[str]  # the fulfillment orders holding them
    variant_ids: list[str]  # what the customer exchanged into
    link: Order  # the order Loop's exchanges[] point at


def add_exchange(world: World, spec: Mapping[str, Any], where: str = "exchange") -> dict[str, Any]:
    """One Loop exchange (order or native items, plus its Loop return) in the scenario format.

    Returns ids of what was created: {"order": {id, name}, "fulfillment_orders": [...], "loop_return": ...}.
    """
    spec = as_mapping(spec, where)
    check_keys(spec, _EXCHANGE_KEYS, where)
    mode = spec.get("mode", "separate")
    if mode not in ("separate", "native"):
        raise ScenarioError(f"{where}: mode must be separate or native, not {mode!r}")
    original_name = str(required(spec, "original", where))
    original = world.order_by_name(original_name)
    if original is None:
        raise ScenarioError(f"{where}: original order {original_name!r} does not exist")
    return_spec = _return_spec(spec.get("return", {}), where)
    created = parse_when(spec.get("created", "now"), world, f"{where}.created")

    with world.lock:
        add = _add_separate if mode == "separate" else _add_native
        exchanged = add(world, original, spec, created, where)
        loop_return = None
        if return_spec is not None:
            loop_return = _add_return(world, original, exchanged, return_spec, created, where)
        order = exchanged.order
        return {
            "order": {"id": order.id, "name": order.name, "legacyId": gid_number(order.id)},
            "fulfillment_orders": exchanged.fulfillment_order_ids,
            "loop_return": None if loop_return is None else {"id": loop_return.id, "state": loop_return.state},
            "created_at": iso(created),
        }


def _return_spec(raw: Any, where: str) -> dict[str, Any] | None:
    """The ``return:`` of an exchange, checked; None when the exchange has no Loop return (yet)."""
    if raw is None:
        return None
    spec = as_mapping(raw, f"{where}.return")
    check_keys(spec, _RETURN_KEYS, f"{where}.return")
    if spec.get("state", "open") not in _RETURN_STATES:
        raise ScenarioError(f"{where}.return.state: must be open, closed, cancelled, expired or review")
    return spec


def _add_separate(world: World, original: Order, spec: dict[str, Any], created: datetime,
                  where: str) -> _Exchanged:
    number = original.name.lstrip("#")
    prefix = str(spec.get("prefix", DEFAULT_PREFIX))
    tags = spec.get("tags")
    order = add_order(world, {
        "name": spec.get("name") or _next_exchange_name(world, prefix, number),
        "created": created,
        "lines": spec.get("lines"),
        # Loop tags the exchange order with the original order's number.
        "tags": [number] if tags is None else tags,
        "fulfillment_orders": spec.get("fulfillment_orders"),
        "holds": spec.get("holds"),
        "closed": spec.get("closed", False),
        # GUESS: Loop's exchange orders' sourceName / app name are unconfirmed.
        "source_name": "loop-exchange",
        "app_name": "Loop Returns & Exchanges",
    }, where)
    if "LE:Exchange" not in original.tags:
        original.tags.append("LE:Exchange")
        world.changed()
    variants = [li.variant_id for li in order.line_items if li.variant_id]
    return _Exchanged(order, list(order.fulfillment_order_ids), variants, link=order)


def _add_native(world: World, original: Order, spec: dict[str, Any], created: datetime,
                where: str) -> _Exchanged:
    if spec.get("name") or spec.get("fulfillment_orders") or spec.get("closed"):
        raise ScenarioError(f"{where}: name, fulfillment_orders and closed only apply to mode: separate")
    lines = line_items(world, spec.get("lines"), where)
    before = len(original.fulfillment_order_ids)
    for line in lines:
        shopify_return = builders.add_native_exchange(world, original.id, line["variant_id"],
                                                      quantity=line["quantity"])
        shopify_return.created_at = created
    fo_ids = original.fulfillment_order_ids[before:]
    for fo_id in fo_ids:
        fo = world.fulfillment_orders[fo_id]
        fo.created_at = fo.updated_at = created
    original.updated_at = created  # the exchange is the order's latest change
    tags = spec.get("tags")
    for tag in (["Loop Exchange"] if tags is None else [str(t) for t in tags]):
        if tag not in original.tags:
            original.tags.append(tag)
            world.changed()
    add_holds(world, fo_ids, spec.get("holds"), where)
    # GUESS: in native mode Loop's exchanges[] point at the original order (no source says).
    return _Exchanged(original, fo_ids, [line["variant_id"] for line in lines], link=original)


def _add_return(world: World, original: Order, exchanged: _Exchanged, spec: dict[str, Any],
                created: datetime, where: str) -> LoopReturn:
    exchanges = [loop_exchange(world, v, exchanged.link) for v in exchanged.variant_ids]
    for ex in exchanges:
        ex.out_of_stock = bool(spec.get("out_of_stock", False))
    number = original.name.lstrip("#")
    return add_loop_return(
        world,
        original,
        exchanges,
        state=spec.get("state", "open"),
        customer=str(spec.get("customer", f"customer{number}@example.com")),
        # The return is made before Loop creates the exchange order.
        created_at=parse_when(spec["created"], world, f"{where}.return.created")
        if spec.get("created") else created - timedelta(minutes=30),
        return_id=spec.get("id"),
    )


def _next_exchange_name(world: World, prefix: str, number: str) -> str:
    n = 1
    while world.order_by_name(f"{prefix}{number}-{n}") is not None:
        n += 1
    return f"{prefix}{number}-{n}"
