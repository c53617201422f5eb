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
    webhooks: {duplicate: 0.2, reorder: 5, delay_ms: 50, seed: 7, retry_delays: [0.05, 0.1]}   # webhooks.Switches
    webhook_subscriptions:                      # made before the sandbox starts
      - {app: Upsell Guard, topic: orders/create, uri: "https://upsell.example/hooks"}

Apps also take ``api_secret``: what deliveries are signed with when the app has no
``client_secret`` (default: ``world.default_api_secret(title)``).

Separate exchange orders are tagged with the original order's number ("1086") and the
original gets ``LE:Exchange``; a native exchange adds its items to the original order
(a Shopify Return with exchange line items and a new fulfillment order) and tags it
``Loop Exchange``. ``tags`` on an exchange replaces the default tags of the order the
exchange lives on. Variants are referred to by SKU (or by their global id).

``add_exchange(world, spec)`` adds one exchange in this format to a running world
(``POST /_sandbox/orders``).

This package reads the files and loads whole scenarios; its modules load the parts:
``values`` (checked values, times, references), ``store`` (shop, apps, Loop, products,
selling plans), ``orders`` and ``exchanges`` (exchanges and their Loop returns).
The built-in scenario files live beside them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from loopsync.sandbox.scenarios.exchanges import add_exchange, add_loop_return, loop_exchange
from loopsync.sandbox.scenarios.orders import add_order
from loopsync.sandbox.scenarios.store import (
    load_apps,
    load_loop,
    load_products,
    load_selling_plan_groups,
    load_shop,
    load_webhook_subscriptions,
    load_webhooks,
)
from loopsync.sandbox.scenarios.values import (
    ScenarioError,
    as_list,
    as_mapping,
    check_keys,
    parse_when,
)
from loopsync.sandbox.world import World

# What the server, tests and scripts import from here; the rest of the parts stay in their modules.
__all__ = [
    "SCENARIO_DIR",
    "ScenarioError",
    "add_exchange",
    "add_loop_return",
    "builtin_scenarios",
    "load_data",
    "load_scenario",
    "loop_exchange",
    "parse_scenario_text",
    "read_scenario",
]

SCENARIO_DIR = Path(__file__).parent


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
    # A copy: the loaders may keep or change what they are given, and the next world must not see it.
    return copy.deepcopy(_parse_once(text, label, json_only))


@lru_cache(maxsize=32)
def _parse_once(text: str, label: str, json_only: bool) -> dict[str, Any]:
    """Parsed once per text: the demo store is built for most tests, and PyYAML takes ~40 ms
    to read it where a deep copy takes under 1 ms. A file that does not parse raises each time."""
    try:
        data = json.loads(text) if json_only else yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
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


# --- whole scenarios --------------------------------------------------------------


_TOP_KEYS = {"shop", "now", "apps", "loop", "products", "selling_plan_groups", "orders", "exchanges", "generate",
             "activity", "description", "webhooks", "webhook_subscriptions"}


def load_data(world: World, data: Mapping[str, Any], *, seed: int = 0, label: str = "scenario") -> World:
    """Load an already-parsed scenario mapping into ``world``."""
    try:
        check_keys(dict(data), _TOP_KEYS, "top level")
        if data.get("now") is not None:
            # Freezing the clock must happen before any relative time is read.
            world.freeze(parse_when(data["now"], world, "now"))
        load_shop(world, as_mapping(data.get("shop"), "shop"))
        load_apps(world, as_list(data.get("apps"), "apps"))
        load_loop(world, as_mapping(data.get("loop"), "loop"))
        load_products(world, as_list(data.get("products"), "products"))
        load_selling_plan_groups(world, as_list(data.get("selling_plan_groups"), "selling_plan_groups"))
        for i, raw in enumerate(as_list(data.get("orders"), "orders")):
            add_order(world, as_mapping(raw, f"orders[{i}]"), f"orders[{i}]")
        for i, raw in enumerate(as_list(data.get("exchanges"), "exchanges")):
            add_exchange(world, as_mapping(raw, f"exchanges[{i}]"), f"exchanges[{i}]")
        if data.get("generate") is not None:
            from loopsync.sandbox.generator import generate_store

            gen = as_mapping(data["generate"], "generate")
            check_keys(gen, {"orders", "exchange_share", "preorder_share", "seed"}, "generate")
            generate_store(world, orders=int(gen.get("orders", 100)),
                           exchange_share=float(gen.get("exchange_share", 0.1)),
                           preorder_share=float(gen.get("preorder_share", 0.5)),
                           seed=int(gen.get("seed", seed)))
        _apply_activity(world, as_list(data.get("activity"), "activity"))
        load_webhooks(world, as_mapping(data.get("webhooks"), "webhooks"))
        load_webhook_subscriptions(world, as_list(data.get("webhook_subscriptions"), "webhook_subscriptions"))
    except ScenarioError as exc:
        raise ScenarioError(f"{label}: {exc}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ScenarioError(f"{label}: {type(exc).__name__}: {exc}") from None
    return world


def _apply_activity(world: World, actions: list) -> None:
    """What happened to the store after it was set up (Flow released holds, staff tagged, …), in order."""
    from loopsync.sandbox.activity import ActivityError, apply

    for i, action in enumerate(actions):
        try:
            apply(world, as_mapping(action, f"activity[{i}]"))
        except ActivityError as exc:
            raise ScenarioError(f"activity[{i}]: {exc}") from None


def load_scenario(world: World, name_or_path: str, *, seed: int = 0) -> World:
    """Load the built-in scenario ``name_or_path`` ("demo") or the YAML/JSON file at that path."""
    data, label = read_scenario(name_or_path)
    return load_data(world, data, seed=seed, label=label)
