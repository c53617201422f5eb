"""Scenarios: a store described in a YAML or JSON file, loaded into a ``World``.

``load_scenario(world, "demo")`` loads the built-in demo (``scenarios/demo.yaml``);
any other string is a path to your own ``.yaml``/``.yml``/``.json`` file. Every key
is optional. The format::

    shop: {name: My Store, domain: my-store.myshopify.com, plan: Basic}
    now: 2026-11-20T12:00:00Z      # freeze the clock; omitted: real time
    apps:
      - title: loopsync
        scopes: [read_orders, write_orders, ...]
        static_token: shpat_sandbox_...   # X-Shopify-Access-Token that never expires
        client_id: ...                    # client-credentials grant at /admin/oauth/access_token
        client_secret: ...
    loop:
      api_keys: {loop_sandbox_key: [returns]}   # key -> scopes
      rate_per_minute: 300
      notes_shape: documented                   # or bare_array (the shape seen in the field)
    products:
      - title: Harbor Rain Jacket
        variants:
          - {title: M, sku: JKT-M, price: "180.00"}
          - {title: L / Pre-order, sku: JKT-L-PRE, metafields: {preorder.shipping_window: Late January 2027}}
    selling_plan_groups:
      - name: Jacket pre-order
        variants: [JKT-L-PRE]                   # SKUs
        plans:
          - {name: Ships March 15, category: PRE_ORDER, fulfillment_trigger: EXACT_TIME,
             fulfillment_exact_time: 2027-03-15, description: ...}
    orders:                                     # ordinary orders
      - name: "#1001"
        created: -3d                            # -90s, -45m, -2h, -3d (relative to now) or an ISO time
        lines: [{sku: TEE-M, quantity: 2, selling_plan: Ships March 15}]
        tags: [vip]
        fulfillment_orders: [{status: SCHEDULED, lines: [0]}]   # optional, default one OPEN FO
        holds: [{app: Upsell Guard, fo: 0, reason: OTHER, handle: upsell}]   # app: null = merchant
        closed: false
    exchanges:
      - mode: separate                          # Loop's legacy "EXC-" order (default) or native
        original: "#1086"                       # an order listed above
        name: EXC-1086-1                        # default {prefix}{number}-{n}, prefix "EXC-"
        created: -2h
        lines: [{sku: JKT-L-PRE}]
        fulfillment_orders: ... / holds: ... / closed: ... / tags: ...   # as for orders
        return: {state: open, customer: a@example.com, created: -3h, id: 41000001}   # null: no Loop return
    generate: {orders: 1000, exchange_share: 0.1, preorder_share: 0.5}   # generator.generate_store

Separate exchange orders are tagged with the original order's number ("1086") and the
original gets ``LE:Exchange``; a native exchange adds its items to the original order
(a Shopify Return with exchange line items and a new fulfillment order) and tags it
``Loop Exchange``. ``tags`` on an exchange replaces the default tags of the order the
exchange lives on. Variants are referred to by SKU (or by their global id).

``add_exchange(world, spec)`` adds one exchange in this format to a running world
(``POST /_sandbox/orders``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from loopsync.sandbox import builders
from loopsync.sandbox.world import (
    FulfillmentOrder,
    LoopExchange,
    LoopReturn,
    Order,
    World,
    gid_number,
    iso,
)

SCENARIO_DIR = Path(__file__).with_name("scenarios")
DEFAULT_PREFIX = "EXC-"
FIRST_LOOP_RETURN_ID = 41_000_001
FIRST_LOOP_ORDER_ID = 61_000_001


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message says where and why."""


# --- reading files ---------------------------------------------------------------


def builtin_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.y*ml")) + sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def read_scenario(name_or_path: str) -> tuple[dict[str, Any], str]:
    """Resolve a built-in name or a file path; returns (data, a label for error messages)."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        for suffix in (".yaml", ".yml", ".json"):
            candidate = SCENARIO_DIR / f"{name_or_path}{suffix}"
            if candidate.exists():
                path = candidate
                break
        else:
            raise ScenarioError(
                f"no scenario named {name_or_path!r}; built in: {', '.join(builtin_scenarios())} "
                "(or give a path to a .yaml/.json file)"
            )
    if not path.is_file():
        raise ScenarioError(f"scenario file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    return parse_scenario_text(text, label=str(path), json_only=path.suffix.lower() == ".json"), str(path)


def parse_scenario_text(text: str, *, label: str = "scenario", json_only: bool = False) -> dict[str, Any]:
    try:
        data = json.loads(text) if json_only else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ScenarioError(f"{label}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{label}: the top level must be a mapping of sections, not {type(data).__name__}")
    return data


# --- small parsers -----------------------------------------------------------


_RELATIVE = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_when(value: Any, world: World, where: str) -> datetime:
    """``-2h`` style offsets from the world's now, "now", or an absolute ISO date/time (UTC if no zone)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if text == "now":
        return world.now()
    match = _RELATIVE.match(text)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        return world.now() + sign * timedelta(**{_UNITS[match.group(3)]: float(match.group(2))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError(f"{where}: {text!r} is neither a time like -2h / -3d nor an ISO date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _known(spec: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _required(spec: dict[str, Any], key: str, where: str) -> Any:
    if spec.get(key) in (None, ""):
        raise ScenarioError(f"{where}: {key} is required")
    return spec[key]


def find_variant(world: World, ref: Any, where: str) -> str:
    """A variant by SKU, global id or numeric id."""
    text = str(ref)
    with world.lock:
        if text in world.variants:
            return text
        for variant in world.variants.values():
            if variant.sku == text or (text.isdigit() and gid_number(variant.id) == int(text)):
                return variant.id
    raise ScenarioError(f"{where}: no variant with SKU or id {text!r}")


def _find_plan(world: World, name: Any, variant_id: str, where: str) -> str:
    with world.lock:
        for group in world.selling_plan_groups.values():
            for plan in group.plans:
                if plan.name == name or plan.id == name:
                    if variant_id not in group.variant_ids:
                        raise ScenarioError(f"{where}: selling plan {name!r} is not offered for this variant")
                    return plan.id
    raise ScenarioError(f"{where}: no selling plan named {name!r}")


def _find_app(world: World, title: Any, where: str) -> str | None:
    if title is None:
        return None
    with world.lock:
        for app in world.apps.values():
            if app.title == title or app.id == title:
                return app.id
    raise ScenarioError(f"{where}: no app titled {title!r}")


# --- sections ----------------------------------------------------------------


def _load_shop(world: World, spec: dict[str, Any]) -> None:
    _known(spec, {"name", "domain", "plan", "bucket_size", "restore_rate"}, "shop")
    world.shop_name = str(spec.get("name", world.shop_name))
    world.shop_domain = str(spec.get("domain", world.shop_domain))
    world.plan = str(spec.get("plan", world.plan))
    # The GraphQL rate limit: Shopify's Standard plan by default (2000-point bucket,
    # 100 points a second); Plus stores get 20000 / 1000.
    for key in ("bucket_size", "restore_rate"):
        if key in spec:
            try:
                value = float(spec[key])
            except (TypeError, ValueError):
                value = 0.0
            if value <= 0:
                raise ScenarioError(f"shop.{key} must be a positive number, not {spec[key]!r}")
            setattr(world, key, value)


def _load_apps(world: World, specs: list[Any]) -> None:
    for i, raw in enumerate(specs):
        where = f"apps[{i}]"
        spec = _mapping(raw, where)
        _known(spec, {"title", "scopes", "static_token", "client_id", "client_secret"}, where)
        builders.add_app(
            world,
            str(_required(spec, "title", where)),
            [str(s) for s in _list(spec.get("scopes"), f"{where}.scopes")],
            static_token=spec.get("static_token"),
            client_id=spec.get("client_id"),
            client_secret=spec.get("client_secret"),
        )


def _load_loop(world: World, spec: dict[str, Any]) -> None:
    _known(spec, {"api_keys", "rate_per_minute", "notes_shape"}, "loop")
    for key, scopes in _mapping(spec.get("api_keys"), "loop.api_keys").items():
        world.loop_api_keys[str(key)] = {str(s) for s in _list(scopes, f"loop.api_keys.{key}")}
    if "rate_per_minute" in spec:
        rate = spec["rate_per_minute"]
        if not isinstance(rate, int) or rate < 1:
            raise ScenarioError("loop.rate_per_minute: must be a positive integer")
        world.loop_rate_per_minute = rate
    if "notes_shape" in spec:
        if spec["notes_shape"] not in ("documented", "bare_array"):
            raise ScenarioError("loop.notes_shape: must be documented or bare_array")
        # Read by loop_api; not a World field because only the notes endpoint cares.
        world.loop_notes_shape = spec["notes_shape"]


def _load_products(world: World, specs: list[Any]) -> None:
    for i, raw in enumerate(specs):
        where = f"products[{i}]"
        spec = _mapping(raw, where)
        _known(spec, {"title", "variants"}, where)
        variants = []
        for j, vraw in enumerate(_list(spec.get("variants"), f"{where}.variants")):
            vwhere = f"{where}.variants[{j}]"
            vspec = _mapping(vraw, vwhere)
            _known(vspec, {"title", "sku", "price", "metafields"}, vwhere)
            metafields = {}
            for mkey, mval in _mapping(vspec.get("metafields"), f"{vwhere}.metafields").items():
                namespace, dot, key = str(mkey).rpartition(".")
                if not dot or not namespace:
                    raise ScenarioError(f"{vwhere}.metafields: key {mkey!r} must be namespace.key")
                metafields[(namespace, key)] = str(mval)
            variants.append({**vspec, "metafields": metafields})
        builders.add_product(world, str(_required(spec, "title", where)), variants)


def _load_selling_plan_groups(world: World, specs: list[Any]) -> None:
    for i, raw in enumerate(specs):
        where = f"selling_plan_groups[{i}]"
        spec = _mapping(raw, where)
        _known(spec, {"name", "merchant_code", "app", "variants", "plans"}, where)
        plans = []
        for j, praw in enumerate(_list(spec.get("plans"), f"{where}.plans")):
            pwhere = f"{where}.plans[{j}]"
            pspec = _mapping(praw, pwhere)
            _known(pspec, {"name", "category", "description", "fulfillment_trigger", "fulfillment_exact_time"}, pwhere)
            _required(pspec, "name", pwhere)
            if pspec.get("fulfillment_exact_time") is not None:
                pspec["fulfillment_exact_time"] = parse_when(pspec["fulfillment_exact_time"], world, pwhere)
            plans.append(pspec)
        if not plans:
            raise ScenarioError(f"{where}: needs at least one plan")
        builders.add_selling_plan_group(
            world,
            str(_required(spec, "name", where)),
            plans,
            variant_ids=[find_variant(world, v, f"{where}.variants") for v in _list(spec.get("variants"), where)],
            merchant_code=spec.get("merchant_code"),
            app_id=_find_app(world, spec.get("app"), where),
        )


def _line_items(world: World, raw_lines: Any, where: str) -> list[dict[str, Any]]:
    lines = []
    for j, raw in enumerate(_list(raw_lines, f"{where}.lines")):
        lwhere = f"{where}.lines[{j}]"
        spec = _mapping(raw, lwhere)
        _known(spec, {"sku", "variant_id", "quantity", "selling_plan", "title"}, lwhere)
        ref = spec.get("sku") or spec.get("variant_id")
        if ref is None:
            raise ScenarioError(f"{lwhere}: sku (or variant_id) is required")
        variant_id = find_variant(world, ref, lwhere)
        quantity = spec.get("quantity", 1)
        if not isinstance(quantity, int) or quantity < 1:
            raise ScenarioError(f"{lwhere}: quantity must be a positive integer")
        line: dict[str, Any] = {"variant_id": variant_id, "quantity": quantity}
        if spec.get("selling_plan") is not None:
            line["selling_plan_id"] = _find_plan(world, spec["selling_plan"], variant_id, lwhere)
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
    for k, fraw in enumerate(_list(raw, f"{where}.fulfillment_orders")):
        fwhere = f"{where}.fulfillment_orders[{k}]"
        spec = _mapping(fraw, fwhere)
        _known(spec, {"status", "lines"}, fwhere)
        refs = []
        for ref in _list(spec.get("lines"), f"{fwhere}.lines"):
            index, qty = (ref[0], ref[1]) if isinstance(ref, list) and len(ref) == 2 else (ref, None)
            if not isinstance(index, int) or not 0 <= index < n_lines:
                raise ScenarioError(f"{fwhere}.lines: {ref!r} is not an index into the order's {n_lines} lines")
            refs.append(index if qty is None else (index, qty))
        fos.append({"status": str(spec.get("status", "OPEN")), "lines": refs})
    return fos


def _add_holds(world: World, fo_ids: list[str], raw: Any, where: str) -> None:
    for k, hraw in enumerate(_list(raw, f"{where}.holds")):
        hwhere = f"{where}.holds[{k}]"
        spec = _mapping(hraw, hwhere)
        _known(spec, {"app", "fo", "handle", "reason", "reason_notes"}, hwhere)
        index = spec.get("fo", 0)
        if not isinstance(index, int) or not 0 <= index < len(fo_ids):
            raise ScenarioError(f"{hwhere}: fo {index!r} is not an index into {len(fo_ids)} fulfillment orders")
        builders.add_hold(
            world,
            fo_ids[index],
            _find_app(world, spec.get("app"), hwhere),
            handle=str(spec.get("handle", "")),
            reason=str(spec.get("reason", "OTHER")),
            reason_notes=spec.get("reason_notes"),
        )


_ORDER_KEYS = {"name", "created", "updated", "lines", "tags", "fulfillment_orders", "holds", "closed", "cancelled",
               "source_name", "app_name", "custom_attributes", "test"}


def add_order(world: World, spec: dict[str, Any], where: str = "order") -> Order:
    """One ordinary order in the scenario format."""
    _known(spec, _ORDER_KEYS, where)
    name = str(_required(spec, "name", where))
    if world.order_by_name(name) is not None:
        raise ScenarioError(f"{where}: an order named {name!r} already exists")
    lines = _line_items(world, spec.get("lines"), where)
    created = parse_when(spec.get("created", "now"), world, f"{where}.created")
    order = builders.add_order(
        world,
        name,
        lines,
        tags=[str(t) for t in _list(spec.get("tags"), f"{where}.tags")],
        created_at=created,
        updated_at=parse_when(spec["updated"], world, f"{where}.updated") if spec.get("updated") else None,
        fulfillment_orders=_fulfillment_orders(spec.get("fulfillment_orders"), len(lines), where),
        source_name=spec.get("source_name", "web"),
        app_name=spec.get("app_name", "Online Store"),
        custom_attributes=[(str(k), str(v)) for k, v in _mapping(spec.get("custom_attributes"), where).items()],
        closed=bool(spec.get("closed", False)),
        cancelled=bool(spec.get("cancelled", False)),
    )
    order.test = bool(spec.get("test", False))
    _add_holds(world, order.fulfillment_order_ids, spec.get("holds"), where)
    return order


# --- exchanges and their Loop returns ---------------------------------------------


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


_EXCHANGE_KEYS = {"mode", "original", "name", "prefix", "created", "lines", "tags", "fulfillment_orders", "holds",
                  "closed", "return"}
_RETURN_KEYS = {"id", "state", "customer", "created", "out_of_stock"}


def add_exchange(world: World, spec: Mapping[str, Any], where: str = "exchange") -> dict[str, Any]:
    """One Loop exchange (order or native items, plus its Loop return) in the scenario format.

    Returns ids of what was created: {"order": {id, name}, "fulfillment_orders": [...], "loop_return": ...}.
    """
    spec = _mapping(spec, where)
    _known(spec, _EXCHANGE_KEYS, where)
    mode = spec.get("mode", "separate")
    if mode not in ("separate", "native"):
        raise ScenarioError(f"{where}: mode must be separate or native, not {mode!r}")
    original_name = str(_required(spec, "original", where))
    original = world.order_by_name(original_name)
    if original is None:
        raise ScenarioError(f"{where}: original order {original_name!r} does not exist")
    return_spec = spec.get("return", {})
    if return_spec is not None:
        return_spec = _mapping(return_spec, f"{where}.return")
        _known(return_spec, _RETURN_KEYS, f"{where}.return")
        state = return_spec.get("state", "open")
        if state not in ("open", "closed", "cancelled", "expired", "review"):
            raise ScenarioError(f"{where}.return.state: must be open, closed, cancelled, expired or review")
    created = parse_when(spec.get("created", "now"), world, f"{where}.created")
    number = original.name.lstrip("#")

    with world.lock:
        if mode == "separate":
            prefix = str(spec.get("prefix", DEFAULT_PREFIX))
            name = spec.get("name") or _next_exchange_name(world, prefix, number)
            tags = spec.get("tags")
            order = add_order(world, {
                "name": name,
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
            exchange_variants = [li.variant_id for li in order.line_items if li.variant_id]
            fo_ids = list(order.fulfillment_order_ids)
            link_order = order
        else:
            if spec.get("name") or spec.get("fulfillment_orders") or spec.get("closed"):
                raise ScenarioError(f"{where}: name, fulfillment_orders and closed only apply to mode: separate")
            lines = _line_items(world, spec.get("lines"), where)
            before = len(original.fulfillment_order_ids)
            for line in lines:
                shopify_return = builders.add_native_exchange(world, original.id, line["variant_id"],
                                                              quantity=line["quantity"])
                shopify_return.created_at = created
            fo_ids = original.fulfillment_order_ids[before:]
            for fo_id in fo_ids:
                fo: FulfillmentOrder = world.fulfillment_orders[fo_id]
                fo.created_at = fo.updated_at = created
            original.updated_at = created  # the exchange is the order's latest change
            tags = spec.get("tags")
            for tag in (["Loop Exchange"] if tags is None else [str(t) for t in tags]):
                if tag not in original.tags:
                    original.tags.append(tag)
            _add_holds(world, fo_ids, spec.get("holds"), where)
            exchange_variants = [line["variant_id"] for line in lines]
            order = original
            # GUESS: in native mode Loop's exchanges[] point at the original order (no source says).
            link_order = original

        loop_return = None
        if return_spec is not None:
            exchanges = [loop_exchange(world, v, link_order) for v in exchange_variants]
            for ex in exchanges:
                ex.out_of_stock = bool(return_spec.get("out_of_stock", False))
            loop_return = add_loop_return(
                world,
                original,
                exchanges,
                state=return_spec.get("state", "open"),
                customer=str(return_spec.get("customer", f"customer{number}@example.com")),
                # The return is made before Loop creates the exchange order.
                created_at=parse_when(return_spec["created"], world, f"{where}.return.created")
                if return_spec.get("created") else created - timedelta(minutes=30),
                return_id=return_spec.get("id"),
            )
        return {
            "order": {"id": order.id, "name": order.name, "legacyId": gid_number(order.id)},
            "fulfillment_orders": fo_ids,
            "loop_return": None if loop_return is None else {"id": loop_return.id, "state": loop_return.state},
            "created_at": iso(created),
        }


def _next_exchange_name(world: World, prefix: str, number: str) -> str:
    n = 1
    while world.order_by_name(f"{prefix}{number}-{n}") is not None:
        n += 1
    return f"{prefix}{number}-{n}"


# --- whole scenarios --------------------------------------------------------------


_TOP_KEYS = {"shop", "now", "apps", "loop", "products", "selling_plan_groups", "orders", "exchanges", "generate",
             "description"}


def load_data(world: World, data: Mapping[str, Any], *, seed: int = 0, label: str = "scenario") -> World:
    """Load an already-parsed scenario mapping into ``world``."""
    try:
        _known(dict(data), _TOP_KEYS, "top level")
        if data.get("now") is not None:
            # Freezing the clock must happen before any relative time is read.
            world.freeze(parse_when(data["now"], world, "now"))
        _load_shop(world, _mapping(data.get("shop"), "shop"))
        _load_apps(world, _list(data.get("apps"), "apps"))
        _load_loop(world, _mapping(data.get("loop"), "loop"))
        _load_products(world, _list(data.get("products"), "products"))
        _load_selling_plan_groups(world, _list(data.get("selling_plan_groups"), "selling_plan_groups"))
        for i, raw in enumerate(_list(data.get("orders"), "orders")):
            add_order(world, _mapping(raw, f"orders[{i}]"), f"orders[{i}]")
        for i, raw in enumerate(_list(data.get("exchanges"), "exchanges")):
            add_exchange(world, _mapping(raw, f"exchanges[{i}]"), f"exchanges[{i}]")
        if data.get("generate") is not None:
            from loopsync.sandbox.generator import generate_store

            gen = _mapping(data["generate"], "generate")
            _known(gen, {"orders", "exchange_share", "preorder_share", "seed"}, "generate")
            generate_store(world, orders=int(gen.get("orders", 100)),
                           exchange_share=float(gen.get("exchange_share", 0.1)),
                           preorder_share=float(gen.get("preorder_share", 0.5)),
                           seed=int(gen.get("seed", seed)))
    except ScenarioError as exc:
        raise ScenarioError(f"{label}: {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ScenarioError(f"{label}: {type(exc).__name__}: {exc}") from None
    return world


def load_scenario(world: World, name_or_path: str, *, seed: int = 0) -> World:
    """Load the built-in scenario ``name_or_path`` ("demo") or the YAML/JSON file at that path."""
    data, label = read_scenario(name_or_path)
    return load_data(world, data, seed=seed, label=label)
