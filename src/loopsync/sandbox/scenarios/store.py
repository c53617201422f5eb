"""The store's sections of a scenario: shop, apps, the Loop account, products and selling plan groups."""

from __future__ import annotations

from typing import Any

from loopsync.sandbox import builders
from loopsync.sandbox.scenarios.values import (
    ScenarioError,
    as_list,
    as_mapping,
    check_keys,
    find_app,
    find_variant,
    parse_when,
    required,
)
from loopsync.sandbox.world import World


def load_shop(world: World, spec: dict[str, Any]) -> None:
    check_keys(spec, {"name", "domain", "plan", "bucket_size", "restore_rate"}, "shop")
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


def load_apps(world: World, specs: list[Any]) -> None:
    for i, raw in enumerate(specs):
        where = f"apps[{i}]"
        spec = as_mapping(raw, where)
        check_keys(spec, {"title", "scopes", "static_token", "client_id", "client_secret", "api_secret"}, where)
        app = builders.add_app(
            world,
            str(required(spec, "title", where)),
            [str(s) for s in as_list(spec.get("scopes"), f"{where}.scopes")],
            static_token=spec.get("static_token"),
            client_id=spec.get("client_id"),
            client_secret=spec.get("client_secret"),
        )
        if spec.get("api_secret") is not None:
            app.api_secret = str(spec["api_secret"])


def load_webhooks(world: World, spec: dict[str, Any]) -> None:
    """The ``webhooks:`` switches (see sandbox/webhooks.py ``Switches``), kept for the engine to start with."""
    from loopsync.sandbox.webhooks import Switches

    try:
        world.webhook_switches = Switches.from_mapping(spec)
    except ValueError as exc:
        raise ScenarioError(f"webhooks: {exc}") from None


def load_webhook_subscriptions(world: World, specs: list[Any]) -> None:
    """Subscriptions that exist before the sandbox starts, usually other apps' (loopsync must never touch them)."""
    from loopsync.sandbox.shopify import rules, subscriptions
    from loopsync.sandbox.webhooks import topic_enum

    for i, raw in enumerate(specs):
        where = f"webhook_subscriptions[{i}]"
        spec = as_mapping(raw, where)
        check_keys(spec, {"app", "topic", "uri"}, where)
        app = world.apps.get(find_app(world, required(spec, "app", where), where) or "")
        if app is None:
            raise ScenarioError(f"{where}.app: names no app of the scenario")
        topic = topic_enum(str(required(spec, "topic", where)))
        if topic is None:
            raise ScenarioError(f"{where}.topic: {spec['topic']!r} is not a topic the sandbox delivers")
        made = subscriptions.create(world, app, topic, str(required(spec, "uri", where)), "JSON")
        if isinstance(made, rules.Refusal):
            raise ScenarioError(f"{where}: {made.message}")


def load_loop(world: World, spec: dict[str, Any]) -> None:
    check_keys(spec, {"api_keys", "rate_per_minute", "notes_shape"}, "loop")
    for key, scopes in as_mapping(spec.get("api_keys"), "loop.api_keys").items():
        world.loop_api_keys[str(key)] = {str(s) for s in as_list(scopes, f"loop.api_keys.{key}")}
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


def load_products(world: World, specs: list[Any]) -> None:
    for i, raw in enumerate(specs):
        where = f"products[{i}]"
        spec = as_mapping(raw, where)
        check_keys(spec, {"title", "variants"}, where)
        variants = []
        for j, vraw in enumerate(as_list(spec.get("variants"), f"{where}.variants")):
            vwhere = f"{where}.variants[{j}]"
            vspec = as_mapping(vraw, vwhere)
            check_keys(vspec, {"title", "sku", "price", "metafields"}, vwhere)
            metafields = {}
            for mkey, mval in as_mapping(vspec.get("metafields"), f"{vwhere}.metafields").items():
                namespace, dot, key = str(mkey).rpartition(".")
                if not dot or not namespace:
                    raise ScenarioError(f"{vwhere}.metafields: key {mkey!r} must be namespace.key")
                metafields[(namespace, key)] = str(mval)
            variants.append({**vspec, "metafields": metafields})
        builders.add_product(world, str(required(spec, "title", where)), variants)


def load_selling_plan_groups(world: World, specs: list[Any]) -> None:
    for i, raw in enumerate(specs):
        where = f"selling_plan_groups[{i}]"
        spec = as_mapping(raw, where)
        check_keys(spec, {"name", "merchant_code", "app", "variants", "plans"}, where)
        plans = []
        for j, praw in enumerate(as_list(spec.get("plans"), f"{where}.plans")):
            pwhere = f"{where}.plans[{j}]"
            pspec = as_mapping(praw, pwhere)
            check_keys(pspec, {"name", "category", "description", "fulfillment_trigger", "fulfillment_exact_time"},
                       pwhere)
            required(pspec, "name", pwhere)
            if pspec.get("fulfillment_exact_time") is not None:
                pspec["fulfillment_exact_time"] = parse_when(pspec["fulfillment_exact_time"], world, pwhere)
            plans.append(pspec)
        if not plans:
            raise ScenarioError(f"{where}: needs at least one plan")
        builders.add_selling_plan_group(
            world,
            str(required(spec, "name", where)),
            plans,
            variant_ids=[find_variant(world, v, f"{where}.variants") for v in as_list(spec.get("variants"), where)],
            merchant_code=spec.get("merchant_code"),
            app_id=find_app(world, spec.get("app"), where),
        )
