"""When loopsync lifts its own holds: only on positive evidence that the pre-order shipped."""

from __future__ import annotations

from datetime import timedelta

from loopsync.sandbox.world import World


def _our_handles(world: World, order_name: str) -> list[str]:
    order = world.order_by_name(order_name)
    return [
        h.handle
        for fo_id in order.fulfillment_order_ids
        for h in world.fulfillment_orders[fo_id].holds
        if h.handle == "loopsync-preorder"
    ]


def _variant(world: World, sku: str) -> str:
    return next(v for v, variant in world.variants.items() if variant.sku == sku)


def test_a_deleted_preorder_variant_keeps_the_hold(connected, cli, sandbox):
    world = sandbox.world
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == ["loopsync-preorder"]
    jacket = _variant(world, "JKT-L-PRE")
    with world.lock:  # the merchant deletes the variant: no evidence it shipped
        product = world.products[world.variants[jacket].product_id]
        product.variant_ids.remove(jacket)
        del world.variants[jacket]
    result = cli(["scan", "--db", str(connected), "--json"])
    assert result.code == 0, result.output
    assert _our_handles(world, "EXC-1086-1") == ["loopsync-preorder"]


def test_an_override_keeps_a_shipped_variant_held_until_it_is_removed(connected, cli, sandbox):
    world = sandbox.world
    assert cli(["scan", "--db", str(connected)]).code == 0
    jacket = _variant(world, "JKT-L-PRE")
    assert cli(["preorders", "add", jacket, "--window", "April 2027", "--db", str(connected)]).code == 0
    world.take_off_preorder(jacket)
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == ["loopsync-preorder"]
    assert cli(["preorders", "remove", jacket, "--db", str(connected)]).code == 0
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == []


def _operations_since(world: World, mark: int) -> list[str]:
    return [e.operation for e in world.log[mark:] if e.api == "shopify"]


def _settled(cli, connected, world: World) -> None:
    """Held, and past the scan that re-reads the orders our own holds and tags updated."""
    from datetime import timedelta

    assert cli(["scan", "--db", str(connected)]).code == 0
    world.advance(timedelta(hours=2))
    world.touch_order(world.order_by_name("#1001").id)  # unrelated store activity moves the cursor on
    # This scan still sees the orders our own holds and tags updated (they are newer
    # than the cursor), once; after it the cursor is past them.
    assert cli(["scan", "--db", str(connected)]).code == 0


def test_held_orders_are_not_reread_every_scan_until_their_preorder_ships(connected, cli, sandbox):
    """Level-triggered without the bill: a held order costs a check of its variants' selling plan
    groups per scan, not a full read of the order or of the variants."""
    world = sandbox.world
    _settled(cli, connected, world)
    mark = len(world.log)
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _operations_since(world, mark) == ["LoopsyncOrderSummariesPage", "LoopsyncVariantGroupIds"]

    world.take_off_preorder(_variant(world, "JKT-L-PRE"))
    mark = len(world.log)
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _operations_since(world, mark).count("LoopsyncOrdersById") == 1  # the two jacket orders, one batch
    assert _our_handles(world, "EXC-1086-1") == [] and _our_handles(world, "EXC-1092-1") == []
    assert _our_handles(world, "EXC-1091-1") == ["loopsync-preorder"]


def test_a_hold_released_in_the_admin_is_respected_when_set_to_respect(connected, cli, sandbox):
    # Shopify does not say who released a hold, so by default loopsync puts it back
    # (tests/test_cli_hold_guard.py); `external_release respect` keeps the old reading.
    from datetime import timedelta

    world = sandbox.world
    assert cli(["config", "set", "external_release", "respect", "--db", str(connected)]).code == 0
    assert cli(["scan", "--db", str(connected)]).code == 0
    world.advance(timedelta(hours=2))
    with world.lock:  # the merchant releases loopsync's hold in Shopify's admin
        order = world.order_by_name("EXC-1086-1")
        for fo_id in order.fulfillment_order_ids:
            fo = world.fulfillment_orders[fo_id]
            fo.holds = [h for h in fo.holds if h.handle != "loopsync-preorder"]
            fo.status = "OPEN"
        world.touch_order(order.id)
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert cli(["scan", "--db", str(connected), "--since", "3h"]).code == 0
    assert _our_handles(world, "EXC-1086-1") == []  # not put back
    from loopsync.store import Store

    with Store.open(connected) as store:
        assert store.orders.is_manually_released(order.id)


def _idle_scan_stats(connected):
    from loopsync import service

    with service.open_store(connected) as store:
        rec = service.reconciler(store)
        report = rec.scan()
        return rec.shopify.stats, report


def test_an_idle_scan_of_held_orders_costs_a_few_points_a_held_variant(connected, cli, sandbox):
    """Shopify's actual cost: 2 + 1 for the summary page's one order, and per held variant 1 + a
    sellingPlanGroups connection of 2 + its one group: 4, where the full variant read costs 9."""
    from loopsync.store import Store

    world = sandbox.world
    _settled(cli, connected, world)
    with Store.open(connected) as store:
        held_variants = {v for row in store.holds.active_holds() for v in row.variant_ids}
    stats, report = _idle_scan_stats(connected)
    assert report.outcomes == [] and stats.throttled == 0
    assert stats.requests == 2
    assert stats.actual_cost == 3 + 4 * len(held_variants), stats


def test_a_variant_moved_from_its_preorder_group_to_another_group_is_released(connected, cli, sandbox):
    """Same number of groups, different ids: the cheap check sees it, and the variant is read in full."""
    from loopsync.sandbox import builders

    world = sandbox.world
    _settled(cli, connected, world)
    jacket = _variant(world, "JKT-L-PRE")
    world.take_off_preorder(jacket)
    builders.add_selling_plan_group(world, "Jacket subscription", [{"name": "Monthly", "category": "SUBSCRIPTION"}],
                                    variant_ids=[jacket])
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == [] and _our_handles(world, "EXC-1092-1") == []
    assert _our_handles(world, "EXC-1091-1") == ["loopsync-preorder"]


def test_a_plan_edited_off_preorder_in_place_is_released_once_the_last_full_read_is_a_day_old(
    connected, cli, sandbox
):
    """The group ids stay the same, so the cheap check cannot see it (see candidates.FACTS_MAX_AGE);
    the daily full read does, and the holds go."""
    import sqlite3
    from datetime import UTC, datetime, timedelta

    world = sandbox.world
    _settled(cli, connected, world)
    jacket = _variant(world, "JKT-L-PRE")
    with world.lock:
        for group in world.selling_plan_groups.values():
            if jacket in group.variant_ids:
                for plan in group.plans:
                    plan.category = "OTHER"
    day_old = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    with sqlite3.connect(connected) as db:
        db.execute("UPDATE variant_facts SET read_at = ?", [day_old])
    assert cli(["scan", "--db", str(connected)]).code == 0
    assert _our_handles(world, "EXC-1086-1") == [] and _our_handles(world, "EXC-1092-1") == []


def test_a_release_wave_releases_while_it_still_reads_the_shipped_orders(connected, cli, sandbox):
    """All reads first spent Shopify's bucket and then Loop's limit one after the other: a wave of
    300 took twice its bound. The shipped orders are read a request at a time as the scan gets to them."""
    from loopsync.sandbox.generator import generate_store
    from support.cli import held_orders

    world = sandbox.world
    generated = generate_store(world, orders=70, exchange_share=0.2, preorder_share=1.0, seed=5)
    assert cli(["scan", "--db", str(connected)]).code == 0
    held = held_orders(cli, connected)
    assert len(held) > 12  # more than one orders-by-id request's worth (10)
    # Past the scan that re-reads the orders our holds and tags updated, as an hour of store activity does.
    world.advance(timedelta(hours=1))
    assert cli(["scan", "--db", str(connected)]).code == 0
    world.advance(timedelta(hours=1))
    world.touch_order(world.order_by_name("#1001").id)
    assert cli(["scan", "--db", str(connected)]).code == 0
    for variant in [*generated.preorder_variant_ids, _variant(world, "JKT-L-PRE"), _variant(world, "BOOT-10-PRE")]:
        world.take_off_preorder(variant)
    with world.lock:
        mark = len(world.log)

    assert cli(["scan", "--db", str(connected)]).code == 0

    assert held_orders(cli, connected) == []
    with world.lock:
        ops = [e.operation for e in world.log[mark:] if e.api == "shopify"]
    reads = [i for i, op in enumerate(ops) if op == "LoopsyncOrdersById"]
    releases = [i for i, op in enumerate(ops) if op == "LoopsyncFulfillmentOrderReleaseHold"]
    assert len(releases) == len(held) and len(reads) >= 2
    assert releases[0] < reads[-1]
