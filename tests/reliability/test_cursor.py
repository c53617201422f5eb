"""Cursor safety: no order is ever skipped, whether it is created while a scan runs, shares its
updatedAt with others across a page boundary or with the stored cursor, or the API's clock is
minutes away from this machine's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from loopsync.sandbox.scenarios import add_exchange
from loopsync.sandbox.server import Sandbox
from loopsync.shopify import ShopifyClient
from support.harness import demo_world, loopsync_app_id, run_cli, sandbox_env

PAGE = 3
ORIGINALS = ["#1001", "#1002", "#1003", "#1005", "#1006", "#1008", "#1009", "#1010"]


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    """Pages of three orders, so page boundaries fall between orders with equal timestamps."""
    real = ShopifyClient.iter_order_summaries

    def small(self, *args, **kwargs):
        return real(self, *args, **{**kwargs, "page_size": PAGE})

    monkeypatch.setattr(ShopifyClient, "iter_order_summaries", small)


@pytest.fixture
def store(tmp_path):
    with Sandbox(demo_world()) as sb:
        db = tmp_path / "state.db"
        assert run_cli(["connect", "--db", str(db)], env=sandbox_env(sb)).code == 0
        yield sb, db


def scan(db):
    result = run_cli(["scan", "--db", str(db)])
    assert result.code == 0, result.output
    return result


def new_exchange(sb, original: str, n: int = 1) -> str:
    name = f"EXC-{original.lstrip('#')}-{n}"
    with sb.world.lock:
        add_exchange(sb.world, {"original": original, "name": name, "lines": [{"sku": "JKT-L-PRE"}]})
    return name


def order(sb, name):
    return next(o for o in sb.world.orders.values() if o.name == name)


def assert_held(sb, *names: str) -> None:
    world, app = sb.world, loopsync_app_id(sb.world)
    for name in names:
        o = order(sb, name)
        holds = [h for fo_id in o.fulfillment_order_ids for h in world.fulfillment_orders[fo_id].holds
                 if h.app_id == app]
        assert len(holds) == 1, f"{name}: {len(holds)} loopsync holds"
        assert "pre-order" in o.tags, f"{name} is not tagged"
        ret = next(r for r in world.loop_returns.values() if r.order_name == original_of(name))
        assert sum(n.content.startswith("[loopsync]") for n in ret.notes) == 1, f"{name}: notes {ret.notes}"


def original_of(name: str) -> str:
    return "#" + name.split("-")[1]


def test_page_size_is_small_enough_to_matter(store):
    sb, db = store
    scan(db)
    pages = [e for e in sb.world.log if e.operation and "Summar" in e.operation]
    assert len(pages) >= 5, "the scan should have read several pages of orders"


def test_orders_created_while_a_scan_runs(store):
    sb, db = store
    graphql = sb.app.graphql()
    real = graphql.handle
    created: list[str] = []
    originals = iter(ORIGINALS)

    def handle(**kwargs):
        answer = real(**kwargs)
        body = kwargs.get("body") or b""
        # A new exchange arrives after each of the first pages is read, and one while holds are placed.
        if (b"Summar" in body and len(created) < 3) or (b"fulfillmentOrderHold" in body and len(created) < 5):
            created.append(new_exchange(sb, next(originals)))
        return answer

    graphql.handle = handle
    scan(db)
    graphql.handle = real
    assert len(created) == 5
    scan(db)
    assert_held(sb, *created)


def test_equal_timestamps_across_page_boundaries_and_the_cursor(store):
    sb, db = store
    names = [new_exchange(sb, original) for original in ORIGINALS[:7]]
    with sb.world.lock:
        same = sb.world.now() - timedelta(minutes=1)
        for o in sb.world.orders.values():  # every order, exchanges or not, in one second
            o.updated_at = same
    scan(db)
    assert_held(sb, *names)

    # Orders stamped with exactly the cursor's second, created after that scan: still found.
    cursor = max(o.updated_at for o in sb.world.orders.values())
    late = [new_exchange(sb, original, 2) for original in ORIGINALS[:4]]
    with sb.world.lock:
        for name in late:
            order(sb, name).updated_at = cursor
    scan(db)
    assert_held(sb, *late)


@pytest.mark.parametrize("skew_minutes", [-7, 7, -30, 30])
def test_clock_skew_between_this_machine_and_the_api(store, skew_minutes):
    sb, db = store
    sb.world.advance(timedelta(minutes=skew_minutes))
    first = new_exchange(sb, "#1001")
    scan(db)
    assert_held(sb, first, "EXC-1086-1")
    # Later exchanges, stamped by the API's clock only.
    second = new_exchange(sb, "#1002")
    sb.world.advance(timedelta(seconds=30))
    third = new_exchange(sb, "#1003")
    scan(db)
    assert_held(sb, second, third)
    scan(db)  # and nothing twice
    assert_held(sb, first, second, third)


def test_a_return_found_only_by_listing_with_the_api_clock_ahead(store):
    """Loop's list is searched by updated_at up to 'now': our now, minutes behind Loop's, must not
    hide a return Loop updated a moment ago (the note would wait until our clock caught up)."""
    sb, db = store
    sb.world.advance(timedelta(minutes=10))
    with sb.world.lock:
        add_exchange(sb.world, {"original": "#1001", "name": "EXC-W1001-1", "lines": [{"sku": "JKT-L-PRE"}]})
        exchange = order(sb, "EXC-W1001-1")
        # No tag or name that leads to the original: only the returns list can find the return.
        exchange.tags = [t for t in exchange.tags if not t.isdigit()]
        ret = next(r for r in sb.world.loop_returns.values()
                   if any(x.exchange_order_name == "EXC-W1001-1" for x in r.exchanges))
        ret.updated_at = sb.world.now()
    scan(db)
    assert sum(n.content.startswith("[loopsync]") for n in ret.notes) == 1
