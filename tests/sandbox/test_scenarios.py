"""Scenario files (the demo and users' own) and the large-store generator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from loopsync.sandbox.generator import generate_store
from loopsync.sandbox.scenarios import ScenarioError, builtin_scenarios, load_data, load_scenario
from loopsync.sandbox.world import World, gid_number

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture()
def demo() -> World:
    return load_scenario(World(now=NOW), "demo")


def _sku(world: World, sku: str) -> str:
    return next(v.id for v in world.variants.values() if v.sku == sku)


def _fos(world: World, name: str):
    return [world.fulfillment_orders[i] for i in world.order_by_name(name).fulfillment_order_ids]


def test_demo_is_built_in():
    assert "demo" in builtin_scenarios()


def test_demo_shop_apps_and_keys(demo):
    assert demo.shop_name == "Sandbox Store" and demo.shop_domain == "sandbox-store.myshopify.com"
    apps = {a.title: a for a in demo.apps.values()}
    loopsync = apps["loopsync"]
    assert loopsync.static_tokens == {"shpat_sandbox_demo_token"}
    assert loopsync.client_id == "sandbox-client-id" and loopsync.client_secret == "shpss_sandbox_demo_secret"
    assert set(loopsync.scopes) == {"read_orders", "write_orders", "read_products",
                                    "read_merchant_managed_fulfillment_orders",
                                    "write_merchant_managed_fulfillment_orders"}
    assert demo.app_for_token("shpat_sandbox_demo_token") is loopsync
    assert "Upsell Guard" in apps
    assert demo.loop_api_keys["loop_sandbox_demo_key"] == {"returns"}


def test_demo_preorder_catalogue(demo):
    jacket_pre, boots_pre = _sku(demo, "JKT-L-PRE"), _sku(demo, "BOOT-10-PRE")
    [jacket_plan] = demo.preorder_plans_for_variant(jacket_pre)
    assert jacket_plan.fulfillment_trigger == "EXACT_TIME"
    assert jacket_plan.fulfillment_exact_time == datetime(2027, 3, 15, tzinfo=UTC)
    [boots_plan] = demo.preorder_plans_for_variant(boots_pre)
    assert boots_plan.fulfillment_trigger == "UNKNOWN" and boots_plan.description
    assert demo.variants[boots_pre].metafields[("preorder", "shipping_window")].value == "Late January 2027"
    for sku in ("JKT-M", "BOOT-9", "TEE-S", "TEE-M", "TEE-L"):
        assert demo.preorder_plans_for_variant(_sku(demo, sku)) == []


def test_demo_orders_and_exchanges(demo):
    names = {o.name for o in demo.orders.values()}
    assert {f"#{n}" for n in range(1001, 1011)} <= names
    assert {"EXC-1086-1", "EXC-1090-1", "EXC-1091-1", "EXC-1092-1", "EXC-1093-1", "#1086", "#1095"} <= names
    exc = demo.order_by_name("EXC-1086-1")
    assert exc.tags == ["1086"]
    assert [demo.variants[li.variant_id].sku for li in exc.line_items] == ["JKT-L-PRE"]
    assert "LE:Exchange" in demo.order_by_name("#1086").tags
    # Mixed pre-order + in-stock in one fulfillment order.
    [mixed] = _fos(demo, "EXC-1091-1")
    assert len(mixed.line_items) == 2 and mixed.status == "OPEN"
    # Already held by Upsell Guard.
    [held] = _fos(demo, "EXC-1092-1")
    upsell = next(a for a in demo.apps.values() if a.title == "Upsell Guard")
    assert held.status == "ON_HOLD" and [h.app_id for h in held.holds] == [upsell.id]
    # Closed.
    assert [fo.status for fo in _fos(demo, "EXC-1093-1")] == ["CLOSED"]
    # Native exchange on #1095: a Shopify Return with an exchange line item and a new open FO.
    native = demo.order_by_name("#1095")
    assert "Loop Exchange" in native.tags
    [ret] = native.returns
    assert [demo.variants[e.variant_id].sku for e in ret.exchange_line_items] == ["BOOT-10-PRE"]
    assert [fo.status for fo in _fos(demo, "#1095")] == ["CLOSED", "OPEN"]


def test_demo_loop_returns_link_to_shopify(demo):
    by_name = {r.order_name: r for r in demo.loop_returns.values()}
    assert set(by_name) == {"#1086", "#1090", "#1091", "#1092", "#1093", "#1095"}
    assert by_name["#1091"].state == "review" and by_name["#1093"].state == "closed"
    for original_name, ret in by_name.items():
        original = demo.order_by_name(original_name)
        assert ret.provider_order_id == str(gid_number(original.id))
        for ex in ret.exchanges:
            linked = next(o for o in demo.orders.values() if gid_number(o.id) == ex.exchange_order_id)
            assert linked.name == ex.exchange_order_name
            assert ex.sku in {demo.variants[li.variant_id].sku for li in linked.line_items}
    assert by_name["#1095"].exchanges[0].exchange_order_name == "#1095"


def test_demo_is_always_recent():
    world = load_scenario(World(), "demo")  # real clock
    now = world.now()
    for name in ("EXC-1086-1", "EXC-1090-1", "EXC-1091-1", "EXC-1092-1", "EXC-1093-1"):
        assert now - timedelta(hours=3) <= world.order_by_name(name).created_at <= now
    assert now - timedelta(hours=3) <= world.order_by_name("#1095").updated_at <= now
    for ret in world.loop_returns.values():
        assert now - timedelta(hours=4) <= ret.created_at <= now


# -- users' own files --

MINIMAL = {
    "now": "2026-01-10T00:00:00Z",
    "apps": [{"title": "mine", "scopes": ["read_orders"], "static_token": "shpat_sandbox_x"}],
    "loop": {"api_keys": {"k": ["returns"]}, "rate_per_minute": 10, "notes_shape": "bare_array"},
    "products": [{"title": "Hat", "variants": [{"sku": "HAT"}, {"sku": "HAT-PRE"}]}],
    "selling_plan_groups": [{"name": "Hat pre", "variants": ["HAT-PRE"], "plans": [{"name": "Soon"}]}],
    "orders": [{"name": "#1", "created": "-1d", "lines": [{"sku": "HAT", "quantity": 2}]}],
    "exchanges": [{"original": "#1", "lines": [{"sku": "HAT-PRE"}], "prefix": "X-", "created": "-30m",
                   "return": {"id": 77, "state": "review"}}],
}


def test_json_and_yaml_files_load_the_same(tmp_path):
    import yaml

    json_path = tmp_path / "store.json"
    yaml_path = tmp_path / "store.yaml"
    json_path.write_text(json.dumps(MINIMAL))
    yaml_path.write_text(yaml.safe_dump(MINIMAL))
    worlds = [load_scenario(World(), str(path)) for path in (json_path, yaml_path)]
    for world in worlds:
        assert world.now() == datetime(2026, 1, 10, tzinfo=UTC)
        assert world.loop_rate_per_minute == 10 and world.loop_notes_shape == "bare_array"
        exc = world.order_by_name("X-1-1")
        assert exc.created_at == datetime(2026, 1, 9, 23, 30, tzinfo=UTC)
        assert world.loop_returns[77].state == "review"
        assert world.loop_returns[77].created_at == datetime(2026, 1, 9, 23, 0, tzinfo=UTC)
    assert worlds[0].snapshot() == worlds[1].snapshot()


def test_generate_section(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("generate: {orders: 50, exchange_share: 0.2}\n")
    world = load_scenario(World(now=NOW), str(path))
    assert len(world.orders) == 50 and len(world.loop_returns) == 10


@pytest.mark.parametrize(("text", "message"), [
    ("orders: [", "not valid YAML (line"),
    ("- 1\n- 2\n", "top level must be a mapping"),
    ("colour: red\n", "unknown key(s) colour"),
    ("orders: [{name: '#1', lines: [{sku: NOPE}]}]\n", "orders[0].lines[0]: no variant with SKU or id 'NOPE'"),
    ("orders: [{name: '#1'}]\n", "orders[0]: needs at least one line"),
    ("exchanges: [{original: '#404', lines: []}]\n", "exchanges[0]: original order '#404' does not exist"),
    ("products: [{title: Hat, variants: [{sku: HAT}]}]\norders: [{name: '#1', created: yesterday, lines: [{sku: HAT}]}]\n",
     "orders[0].created: 'yesterday' is neither a time like -2h"),
    ("apps: [{scopes: []}]\n", "apps[0]: title is required"),
    ("loop: {notes_shape: xml}\n", "loop.notes_shape"),
    ("products: {title: Hat}\n", "products: expected a list"),
    ("shop: {bucket_size: -5}\n", "shop.bucket_size must be a positive number"),
])
def test_bad_files_give_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(World(now=NOW), str(path))
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_bad_json_and_missing_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"orders": [}')
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario(World(), str(path))
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(World(), str(tmp_path / "missing.yaml"))
    with pytest.raises(ScenarioError, match="no scenario named 'nope'"):
        load_scenario(World(), "nope")


def test_duplicate_names_are_rejected():
    data = {"products": [{"title": "Hat", "variants": [{"sku": "HAT"}]}],
            "orders": [{"name": "#1", "lines": [{"sku": "HAT"}]}, {"name": "#1", "lines": [{"sku": "HAT"}]}]}
    with pytest.raises(ScenarioError, match="already exists"):
        load_data(World(), data)


# -- generator --


def _fingerprint(world: World) -> list[tuple]:
    return [
        (o.name, tuple(sorted(o.tags)), tuple(world.variants[li.variant_id].sku for li in o.line_items),
         o.created_at, len(o.fulfillment_order_ids))
        for o in world.orders.values()
    ] + [(r.order_name, r.state, tuple(e.sku for e in r.exchanges)) for r in world.loop_returns.values()]


def test_generator_is_deterministic_by_seed():
    one, two, other = World(now=NOW), World(now=NOW), World(now=NOW)
    generate_store(one, orders=500, seed=4)
    generate_store(two, orders=500, seed=4)
    generate_store(other, orders=500, seed=5)
    assert _fingerprint(one) == _fingerprint(two)
    assert _fingerprint(one) != _fingerprint(other)


def test_generator_shares_and_links():
    world = World(now=NOW)
    store = generate_store(world, orders=1000, exchange_share=0.1, preorder_share=0.5, seed=1)
    assert len(world.orders) == 1000 == len(store.orders)
    assert len(store.separate_exchanges) == 50 and len(store.native_exchanges) == 50
    assert len(world.loop_returns) == 100
    assert 30 <= len(store.preorder_exchanges) <= 70
    for name in store.separate_exchanges:
        order = world.order_by_name(name)
        assert order.tags == [name.split("-")[1]]
    for name in store.native_exchanges:
        assert "Loop Exchange" in world.order_by_name(name).tags and world.order_by_name(name).returns
    for ret in world.loop_returns.values():
        linked = next(o for o in world.orders.values() if gid_number(o.id) == ret.exchanges[0].exchange_order_id)
        assert linked.name == ret.exchanges[0].exchange_order_name


def test_generator_on_top_of_the_demo_does_not_clash(demo):
    generate_store(demo, orders=100, seed=0)
    names = [o.name for o in demo.orders.values()]
    assert len(names) == len(set(names))


def test_generator_is_fast():
    started = time.monotonic()
    generate_store(World(now=NOW), orders=10_000, seed=0)
    assert time.monotonic() - started < 5


def test_shop_section_sets_the_graphql_rate_limit(tmp_path):
    path = tmp_path / "plus.yaml"
    path.write_text("shop: {name: Plus Store, bucket_size: 20000, restore_rate: 1000}\n")
    world = load_scenario(World(now=NOW), str(path))
    assert (world.bucket_size, world.restore_rate) == (20000.0, 1000.0)
    assert (World().bucket_size, World().restore_rate) == (2000.0, 100.0)


def test_a_parsed_scenario_is_the_callers_own_copy():
    """Texts are parsed once and reused: what one caller changes must not reach the next."""
    from loopsync.sandbox.scenarios import SCENARIO_DIR, parse_scenario_text

    text = (SCENARIO_DIR / "demo.yaml").read_text(encoding="utf-8")
    first = parse_scenario_text(text, label="demo")
    pristine = repr(first)
    first["orders"].clear()
    first["shop"]["name"] = "changed"
    assert repr(parse_scenario_text(text, label="demo")) == pristine
