"""Orders in the scenario format: their lines, fulfillment orders and the holds already on them."""

from __future__ import annotations

from typing import Any

from loopsync.sandbox import builders
from loopsync.sandbox.scenarios.values import (
    ScenarioError,
    as_list,
    as_mapping,
    check_keys,
    find_app,
    find_plan,
    find_variant,
    parse_when,
    required,
)
from loopsync.sandbox.world import Order, World

_ORDER_KEYS = {"name", "created", "updated", "lines", "tags", "fulfillment_orders", "holds", "closed", "cancelled",
               "source_name", "app_name", "custom_attributes", "test"}


def line_items(world: World, raw_lines: Any, where: str) -> list[dict[str, Any]]:
    lines = []
    for j, raw in enumerate(as_list(raw_lines, f"{where}.lines")):
        lwhere = f"{where}.lines[{j}]"
        spec = as_mapping(raw, lwhere)
        check_keys(spec, {"sku", "variant_id", "quantity", "selling_plan", "title"}, lwhere)
        ref = spec.get("sku") or spec.get("variant_id")
        if ref is None:
            raise ScenarioError(f"{lwhere}: sku (or variant_id) is required")
        variant_id = find_variant(world, ref, lwhere)
        quantity = spec.get("quantity", 1)
        if not isinstance(quantity, int) or quantity < 1:
            raise ScenarioError(f"{lwhere}: quantity must be a positive integer")
        line: dict[str, Any] = {"variant_id": variant_id, "quantity": quantity}
        if spec.get("selling_plan") is not None:
            line["selling_plan_id"] = find_plan(world, spec["selling_plan"], variant_id, lwhere)
        if spec.get("title"):
            line["title"] = str(spec["title"])
        lines.append(line)
    if not lines:
        raise ScenarioError(f"{where}: needs at least one line")
    return lines


def _fulfillment_orders(raw: Any, n_lines: int, where: str) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    fos = []
    for k, fraw in enumerate(as_list(raw, f"{where}.fulfillment_orders")):
        fwhere = f"{where}.fulfillment_orders[{k}]"
        spec = as_mapping(fraw, fwhere)
        check_keys(spec, {"status", "lines"}, fwhere)
        refs = []
        for ref in as_list(spec.get("lines"), f"{fwhere}.lines"):
            index, qty = (ref[0], ref[1]) if isinstance(ref, list) and len(ref) == 2 else (ref, None)
            if not isinstance(index, int) or not 0 <= index < n_lines:
                raise ScenarioError(f"{fwhere}.lines: {ref!r} is not an index into the order's {n_lines} lines")
            refs.append(index if qty is None else (index, qty))
        fos.append({"status": str(spec.get("status", "OPEN")), "lines": refs})
    return fos


def add_holds(world: World, fo_ids: list[str], raw: Any, where: str) -> None:
    for k, hraw in enumerate(as_list(raw, f"{where}.holds")):
        hwhere = f"{where}.holds[{k}]"
        spec = as_mapping(hraw, hwhere)
        check_keys(spec, {"app", "fo", "handle", "reason", "reason_notes"}, hwhere)
        index = spec.get("fo", 0)
        if not isinstance(index, int) or not 0 <= index < len(fo_ids):
            raise ScenarioError(f"{hwhere}: fo {index!r} is not an index into {len(fo_ids)} fulfillment orders")
        builders.add_hold(
            world,
            fo_ids[index],
            find_app(world, spec.get("app"), hwhere),
            handle=str(spec.get("handle", "")),
            reason=str(spec.get("reason", "OTHER")),
            reason_notes=spec.get("reason_notes"),
        )


def add_order(world: World, spec: dict[str, Any], where: str = "order") -> Order:
    """One ordinary order in the scenario format."""
    check_keys(spec, _ORDER_KEYS, where)
    name = str(required(spec, "name", where))
    if world.order_by_name(name) is not None:
        raise ScenarioError(f"{where}: an order named {name!r} already exists")
    lines = line_items(world, spec.get("lines"), where)
    created = parse_when(spec.get("created", "now"), world, f"{where}.created")
    order = builders.add_order(
        world,
        name,
        lines,
        tags=[str(t) for t in as_list(spec.get("tags"), f"{where}.tags")],
        created_at=created,
        updated_at=parse_when(spec["updated"], world, f"{where}.updated") if spec.get("updated") else None,
        fulfillment_orders=_fulfillment_orders(spec.get("fulfillment_orders"), len(lines), where),
        source_name=spec.get("source_name", "web"),
        app_name=spec.get("app_name", "Online Store"),
        custom_attributes=[(str(k), str(v)) for k, v in as_mapping(spec.get("custom_attributes"), where).items()],
        closed=bool(spec.get("closed", False)),
        cancelled=bool(spec.get("cancelled", False)),
    )
    order.test = bool(spec.get("test", False))
    add_holds(world, order.fulfillment_order_ids, spec.get("holds"), where)
    return order
